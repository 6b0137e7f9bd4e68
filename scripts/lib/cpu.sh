# shellcheck shell=bash
# CPU accounting of a guest boot: a console line
#   CPUSTAT cpus=N <cpu line of /proc/stat before> / <cpu line after>
# (tests/vm/init prints it around devmgr's run, scripts/udevd-cpu around udevd's trigger and
# settle) gives the CPU time the guest was busy in between.

# Awk functions over a cpu line of /proc/stat whose "cpu" is field o: its clock ticks in all
# (user nice system idle iowait irq softirq steal; guest and guest_nice are in user and nice
# already) and those idle (idle and iowait). Busy is the difference.
# shellcheck disable=SC2016 # awk's $, not the shell's
cpu_awk='function cpu_ticks(o,   i, t) { t = 0; for (i = o + 1; i <= o + 8; i++) t += $i; return t }
function cpu_idle(o) { return $(o + 4) + $(o + 5) }'

# cpu_work LOG -> "CPUS BUSY USER SYSTEM": the guest's CPUs, then seconds of CPU time busy (all
# but idle and iowait), in user mode and in the kernel, summed over its CPUs. Empty if LOG has
# no CPUSTAT line.
cpu_work() {
    grep -a -m1 '^CPUSTAT ' "$1" | tr -d '\r' | awk "$cpu_awk"'{
        sub(/^cpus=/, "", $2); cpus = $2
        # $3.. is "cpu user nice system idle iowait irq softirq steal guest guest_nice",
        # then "/", then the same after.
        total = cpu_ticks(15) - cpu_ticks(3)
        idle = cpu_idle(15) - cpu_idle(3)
        printf "%d %.2f %.2f %.2f\n", cpus, (total - idle) / 100, ($(16) + $(17) - $4 - $5) / 100, ($(18) - $6) / 100
    }'
}
