# shellcheck shell=bash
# CPU accounting of a guest boot: a console line
#   CPUSTAT cpus=N <cpu line of /proc/stat before> / <cpu line after>
# (tests/vm/init prints it around devmgr's run, scripts/udevd-cpu around udevd's trigger and
# settle) gives the CPU time the guest was busy in between.

# cpu_work LOG -> "CPUS BUSY USER SYSTEM": the guest's CPUs, then seconds of CPU time busy (all
# but idle and iowait), in user mode and in the kernel, summed over its CPUs. Empty if LOG has
# no CPUSTAT line.
cpu_work() {
    grep -a -m1 '^CPUSTAT ' "$1" | tr -d '\r' | awk '{
        sub(/^cpus=/, "", $2); cpus = $2
        # $3.. is "cpu user nice system idle iowait irq softirq steal guest guest_nice",
        # then "/", then the same after.
        for (i = 4; i <= 11; i++) total += $(i + 12) - $i
        idle = ($(19) - $7) + ($(20) - $8)
        printf "%d %.2f %.2f %.2f\n", cpus, (total - idle) / 100, ($(16) + $(17) - $4 - $5) / 100, ($(18) - $6) / 100
    }'
}
