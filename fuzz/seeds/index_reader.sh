#!/usr/bin/env bash
# Makes the seed inputs of the index_reader fuzz target: small module trees taken from a
# Debian kernel unpacked by scripts/kernels, indexed by the real depmod (Debian's kmod), then
# joined as  alias.bin SEP dep.bin SEP builtin.bin SEP builtin.alias.bin SEP queries
# (SEP = "\n--8<--\n"; see fuzz_targets/index_reader.rs).
#
# Usage: fuzz/seeds/index_reader.sh OUT_DIR [KERNEL_MODULE_DIR]
#   KERNEL_MODULE_DIR defaults to the 6.12 kernel in $DEVMGR_CACHE/kernels (scripts/lib/cache.sh).
set -euo pipefail

out=${1:?usage: $0 OUT_DIR [KERNEL_MODULE_DIR]}
# shellcheck source=../../scripts/lib/cache.sh
. "$(dirname "$0")/../../scripts/lib/cache.sh"
src=${2:-$(ls -d "$DEVMGR_CACHE"/kernels/6.12.*/root/lib/modules/6.12.* | head -n1)}
version=$(basename "$src")
command -v depmod >/dev/null || PATH=$PATH:/usr/sbin:/sbin
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sep=$'\n--8<--\n'

# seed NAME "MODULE…" "QUERY…": the modules (paths from modules.dep) plus their dependencies.
seed() {
    local name=$1 modules=$2 queries=$3 root="$work/$1" m line
    local dir="$root/lib/modules/$version"
    mkdir -p "$dir"
    # A few builtin modules and builtin aliases, not the kernel's 190 (keeps seeds small).
    grep -E '/(atkbd|i8042|serio|rtc-cmos|fuse|virtiofs|sha256_generic|ecdsa_generic|xen-kbdfront|spidev)\.ko$' \
        "$src/modules.builtin" >"$dir/modules.builtin"
    tr '\0' '\n' <"$src/modules.builtin.modinfo" |
        grep -E '^(atkbd|i8042|rtc_cmos|fuse|virtiofs|sha256_generic|ecdsa_generic|xen_kbdfront|spidev)\.(alias|file)=' |
        tr '\n' '\0' >"$dir/modules.builtin.modinfo"
    : >"$dir/modules.order"
    for m in $modules; do
        line=$(grep -E "(^|/)$m\.ko(\.xz|\.zst|\.gz)?:" "$src/modules.dep")
        for f in ${line/:/}; do
            mkdir -p "$dir/$(dirname "$f")"
            cp "$src/$f" "$dir/$f"
        done
    done
    # depmod's priorities follow modules.order: keep the kernel's order for the copied files.
    (cd "$dir" && find kernel -name '*.ko*') | sed -E 's/\.(xz|zst|gz)$//' |
        grep -Fxf - "$src/modules.order" >"$dir/modules.order" || true
    depmod -b "$root" "$version"
    {
        cat "$dir/modules.alias.bin"; printf '%s' "$sep"
        cat "$dir/modules.dep.bin"; printf '%s' "$sep"
        cat "$dir/modules.builtin.bin"; printf '%s' "$sep"
        cat "$dir/modules.builtin.alias.bin"; printf '%s' "$sep"
        printf '%s\n' $queries
    } >"$out/$name"
    # The same trees with fewer files: alias index only, dependency index only.
    cat "$dir/modules.alias.bin" >"$out/$name-alias-only"
    { printf '%s' "$sep"; cat "$dir/modules.dep.bin"; } >"$out/$name-dep-only"
}

seed e1000 "e1000" "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00 e1000 e1000e"
seed virtio "virtio_net virtio_blk virtio_scsi virtio_balloon virtio_input" \
    "virtio:d00000001v00001AF4 virtio:d00000002v00001AF4 virtio:d00000008v00001AF4 virtio_net net_failover"
seed usb "xhci-pci usbhid hid-generic uas" \
    "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30 usb:v0627p0001d0000dc00dsc00dp00ic03isc00ip00in00 hid:b0003g0001v00000627p00000001 xhci_pci usb-storage"
seed ahci "ahci ata_piix" "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01 pci:v00008086d00007010sv00000000sd00000000bc01sc01i80 ahci libata"
seed snd "snd-hda-intel snd-hda-codec-generic" "pci:v00008086d00002668sv00001AF4sd00001100bc04sc03i00 hdaudio:v1AF40022r00100101a01 snd_hda_intel"
seed input "psmouse serio_raw evdev" "serio:ty01pr00id00ex00 serio:ty06pr00id00ex00 input:b0011v0002p0006e0000-e0,1,2,k110,111,112,113,114,r0,1,6,8,amlsfw psmouse"
ls -l "$out"
