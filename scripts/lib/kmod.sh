# shellcheck shell=bash
# Debian's kmod (modprobe, rmmod) for the guests that need it (sourced by scripts/vm-scenarios
# and scripts/vm-scale).

# udevd_debs DIR: Debian's packages of udevd's guest (those of shared/anchor/udevd-vm.sh, plus
# kmod) downloaded into DIR once.
udevd_debs() {
    local debs=$1
    mkdir -p "$debs"
    if ! ls "$debs"/kmod_*.deb "$debs"/udev_*.deb >/dev/null 2>&1; then
        echo "downloading Debian's udev, kmod and their libraries" >&2
        (cd "$debs" && apt-get download -qq udev libkmod2 libblkid1 libacl1 libcap2 libselinux1 \
            libzstd1 liblzma5 libssl3 libpcre2-8-0 kmod >/dev/null 2>&1)
    fi
}

# kmod_overlay DEBS OVERLAY: Debian's kmod binary as OVERLAY/bin/kmod with the libraries it
# needs as this Debian 12 machine has them (devmgr's guest has none), to copy over a guest's
# root; the guest links /sbin/modprobe etc. to it.
kmod_overlay() {
    local debs=$1 overlay=$2 unpacked lib
    unpacked=$(mktemp -d "${TMPDIR:-/tmp}/kmod.XXXXXX")
    mkdir -p "$overlay"/{bin,lib64,lib/x86_64-linux-gnu}
    dpkg-deb -x "$(ls "$debs"/kmod_*.deb)" "$unpacked"
    cp "$unpacked/bin/kmod" "$overlay/bin/kmod"
    rm -rf "$unpacked"
    ldd "$overlay/bin/kmod" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | while read -r lib; do
        case $lib in
            /lib64/*) cp -L "$lib" "$overlay/lib64/" ;;
            *) cp -L "$lib" "$overlay/lib/x86_64-linux-gnu/" ;;
        esac
    done
}
