# shellcheck shell=bash
# The reference scripts (systemd-udevd in the guest at boot and at scale, the guest's hardware):
# the directory ANCHOR_DIR names when it is set, else the repository's copy in tests/vm/anchor
# (see its README). Set ANCHOR_DIR to the original scripts the copy was taken from to run
# against them; scripts/vm-test and scripts/vm-scale then fail if the copy differs from them.
# Usage: anchor=$(anchor_dir "$checkout")   (fails when ANCHOR_DIR lacks udevd-vm.sh or devices.sh)
anchor_dir() {
    local checkout=$1
    if [ -z "${ANCHOR_DIR:-}" ]; then
        echo "$checkout/tests/vm/anchor"
    elif [ -f "$ANCHOR_DIR/udevd-vm.sh" ] && [ -f "$ANCHOR_DIR/devices.sh" ]; then
        (cd "$ANCHOR_DIR" && pwd)
    else
        echo "anchor_dir: ANCHOR_DIR=$ANCHOR_DIR has no udevd-vm.sh and devices.sh" >&2
        return 1
    fi
}
