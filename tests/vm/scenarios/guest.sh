# shellcheck shell=sh
# Guest side of scripts/vm-scenarios, sourced (busybox sh) by both guests' init: tests/vm/init
# (devmgr, kernel argument devmgr.scenario=NAME) and tests/vm/scenarios/udevd-init (systemd-udevd).
# The caller sets `scenario` (NAME) and `manager` (devmgr or udevd), then calls
#   scenario_prepare   before the manager starts: kmod's tools as /sbin/*, the scenario's
#                      *.conf into /etc/modprobe.d, its `pre` hook;
#   scenario_run       once the manager settled: waits until idle, records that state (BOOT
#                      lines), runs the scenario's `run` script, waits until idle again,
#                      prints what it did;
#   scenario_finish    prints the outcome and powers the guest off (the caller may print its
#                      manager's diagnostics in between).
# Everything a scenario does goes through these functions, so that both managers see the same
# steps; only wait_idle starts with `udevadm settle` under udevd (there is no such command for
# devmgr), and then waits the same way under both.
#
# Console lines (read by scripts/vm-scenarios):
#   SCENARIO NAME manager=M cmdline=...     at the start
#   SETTLED t=UPTIME                        the manager settled (devmgr: its "settled" line)
#   RUN ...                                 what the scenario's scripts printed (not compared)
#   RUN IDLE t=UPTIME waited=S ok|timeout   each wait_idle
#   BOOT MOD m / BOOT DRV bus dev drv       the state before the scenario's `run` (not compared)
#   OUTCOME begin ... OUTCOME end           the compared lines, between these two:
#     MOD m | DRV bus device driver | PARAM module param value | MARK text

# shellcheck disable=SC2154 # scenario and manager: set by the caller (see above)
scn=/scenarios/$scenario

# The loaded modules, one name a line, sorted.
modules() { cut -d' ' -f1 /proc/modules | sort; }

# The device -> driver map: "DRV bus device driver" lines, sorted (drv-map, in every guest).
drv_map() { /bin/drv-map; }

snapshot() { modules; drv_map; }

# wait_idle [MAX_S]: under udevd first `udevadm settle`; then, for both managers, until
# /proc/modules and the DRV map stayed the same for 3 s (polled every second), at most MAX_S
# (default 120) seconds in all.
wait_idle() {
    wi_max=${1:-120}
    wi_t0=$(cut -d. -f1 /proc/uptime)
    # shellcheck disable=SC2154
    if [ "$manager" = udevd ]; then
        udevadm settle --timeout="$wi_max" || echo "udevadm settle: status $?"
    fi
    wi_prev=
    wi_same=0
    while :; do
        wi_now=$(snapshot | md5sum)
        if [ "$wi_now" = "$wi_prev" ]; then
            wi_same=$((wi_same + 1))
        else
            wi_same=0
            wi_prev=$wi_now
        fi
        wi_t=$(cut -d. -f1 /proc/uptime)
        if [ "$wi_same" -ge 3 ]; then
            echo "IDLE t=$wi_t waited=$((wi_t - wi_t0)) ok"
            return 0
        fi
        if [ $((wi_t - wi_t0)) -ge "$wi_max" ]; then
            echo "IDLE t=$wi_t waited=$((wi_t - wi_t0)) timeout"
            return 1
        fi
        sleep 1
    done
}

scenario_prepare() {
    # kmod's modprobe and friends (Debian's kmod package) as /sbin/*, as Debian has them (udevd's
    # guest has them already). Call them by path: busybox's shell runs its own applets of the same
    # names (modprobe, rmmod, ...) before it looks at PATH.
    mkdir -p /sbin /etc/modprobe.d
    for t in modprobe rmmod insmod lsmod modinfo depmod; do
        [ -e "/sbin/$t" ] || ln -s /bin/kmod "/sbin/$t"
    done
    for f in "$scn"/*.conf; do
        [ -f "$f" ] && cp "$f" /etc/modprobe.d/
    done
    echo "SCENARIO $scenario manager=$manager cmdline=$(cat /proc/cmdline)"
    : >/run/scenario.out
    if [ -f "$scn/pre" ]; then
        # shellcheck source=/dev/null
        (. "$scn/pre") >>/run/scenario.out 2>&1
    fi
}

# The compared lines of the scenario (see the top).
outcome() {
    echo "OUTCOME begin"
    modules | sed 's/^/MOD /'
    drv_map
    # `params`: a module a line (all its parameters) or "module param" (that one).
    if [ -f "$scn/params" ]; then
        grep -v '^#' "$scn/params" | while read -r m p; do
            for f in "/sys/module/$m/parameters/"${p:-*}; do
                [ -f "$f" ] || continue
                echo "PARAM $m ${f##*/} $(cat "$f" 2>/dev/null || echo '(unreadable)')"
            done
        done
    fi
    grep '^MARK ' /run/scenario.out
    for f in /run/marker-*; do
        [ -e "$f" ] && echo "MARK ${f#/run/} exists"
    done
    echo "OUTCOME end"
}

scenario_run() {
    echo "SETTLED t=$(cut -d' ' -f1 /proc/uptime)"
    # Settled is not the end of every load: snd_hda_intel probes its codecs from a work item,
    # so the codec's device (and the load of its driver) may come after udevadm settle returns.
    # The scenario starts from a state that no longer changes, the same under both managers.
    wait_idle 120 >>/run/scenario.out
    snapshot >/run/boot
    if [ -f "$scn/run" ]; then
        # shellcheck source=/dev/null
        (. "$scn/run") >>/run/scenario.out 2>&1
    fi
    wait_idle 120 >>/run/scenario.out
    # Kernel messages would interleave with the lines below on the console.
    echo 1 >/proc/sys/kernel/printk
    sed 's/^/RUN /' /run/scenario.out
    sed -e 's/^DRV /BOOT DRV /' -e '/^BOOT /!s/^/BOOT MOD /' /run/boot
    outcome >/run/outcome
}

scenario_finish() {
    cat /run/outcome
    # The console's output is still in the tty's buffer when `echo` returns; the power-off
    # would cut it (the kernel's own lines go out at once).
    sleep 2
    echo o >/proc/sysrq-trigger
    sleep 5
}
