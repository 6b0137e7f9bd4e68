# shellcheck shell=bash
# The reference scripts (systemd-udevd in the guest, the guest's hardware): ANCHOR_DIR, else
# shared/anchor beside the checkout, else /work/shared/anchor, else the copy in
# tests/vm/anchor (see its README). Usage: anchor=$(anchor_dir "$checkout")
anchor_dir() {
    local checkout=$1 d
    for d in "${ANCHOR_DIR:-}" "$checkout/../shared/anchor" /work/shared/anchor; do
        if [ -n "$d" ] && [ -f "$d/udevd-vm.sh" ] && [ -f "$d/devices.sh" ]; then
            (cd "$d" && pwd)
            return
        fi
    done
    echo "$checkout/tests/vm/anchor"
}
