# shellcheck shell=bash
# Shared by scripts/guest, scripts/vm-test and scripts/vm-scale (sourced).

# early_panic LOG MARKER: the kernel panicked before userspace printed MARKER (vm-scale: before
# the guest printed devmgr's summary). MARKER may be anywhere in a line: the console's reset
# codes (ESC c ...) precede the init's first line on the same line.
# Under TCG the Debian kernels now and then oops while patching their own code in an initcall
# (seen: int3 in cpu_latency_qos_init, 6.12), long before init runs; that boot says nothing
# about a device manager, so the callers boot it again (at most twice, each retry logged).
early_panic() {
    grep -aq 'Kernel panic - not syncing' "$1" && ! grep -aqF "$2" "$1"
}
