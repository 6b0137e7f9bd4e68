# shellcheck shell=sh
# Guest side of scripts/vm-scale, sourced (busybox sh) by tests/vm/init when the kernel command
# line has devmgr.scale=LUNS (and devmgr.cycles=N, default 1): the same steps as
# shared/anchor/udevd-scale.sh's init, with devmgr as a daemon instead of systemd-udevd.
#
# devmgr runs on after it settled; then, N times: scsi_debug is inserted with LUNS logical units
# (8 targets), all hot-added at once; the time when every LUN is an sd disk and when
# `devmgr settle` returns are printed with devmgr's peak RSS so far; then (but after the last)
# scsi_debug is removed again (as many `remove` events) and devmgr settles. Console lines:
#   SCALE devmgr cycle=C luns=N inserted=T0 disks=T1 settled=T2 ndisks=K nmod=M hwm_kb=R rc=S
#         anon_kb=A file_kb=F   (its resident set now: anonymous, file-backed)
#   SCALEBOOT hwm_kb=R anon_kb=A file_kb=F   devmgr when it had settled at boot, before any
#                                            insert
#   CPUSTAT cpus=N <cpu line> / <cpu line>   the guest's CPU time from insertion to settled,
#   CPUOWN cycle=C ticks U S / U S           and devmgr's own (user, system ticks), each cycle
# then devmgr's summary (SUMMARY, after SIGUSR1), its log (LOG) and MOD lines.

scale_run() { # LUNS CYCLES CONFIG
    sr_luns=$1 sr_cycles=$2 sr_config=$3 sr_tgts=8
    mkdir -p /sbin
    for t in modprobe rmmod; do [ -e "/sbin/$t" ] || ln -s /bin/kmod "/sbin/$t"; done
    (
        # shellcheck disable=SC3045 # busybox sh has ulimit -s
        [ "${DEVMGR_LOWMAPS:-0}" = 1 ] && ulimit -s unlimited
        RUST_LOG=info exec /bin/devmgr run --config "/etc/devmgr/$sr_config.toml"
    ) >/run/summary 2>/run/log &
    sr_pid=$!
    sr_i=0
    until grep -q '^devmgr: settled after' /run/summary; do
        if [ "$sr_i" -ge 1800 ] || ! kill -0 "$sr_pid" 2>/dev/null; then
            echo "SCALE devmgr did not settle at boot"
            break
        fi
        usleep 100000
        sr_i=$((sr_i + 1))
    done
    echo "SCALEBOOT hwm_kb=$(scale_hwm "$sr_pid") $(scale_rss "$sr_pid")"
    sr_c=1
    while [ "$sr_c" -le "$sr_cycles" ]; do
        sr_t0=$(cut -d' ' -f1 /proc/uptime)
        sr_cpu0=$(head -n1 /proc/stat)
        sr_own0=$(scale_own_ticks "$sr_pid")
        /sbin/modprobe scsi_debug add_host=1 num_tgts=$sr_tgts max_luns=$((sr_luns / sr_tgts)) dev_size_mb=1
        scale_wait_disks "$sr_luns"
        sr_t1=$(cut -d' ' -f1 /proc/uptime)
        /bin/devmgr settle --timeout 10m >/run/settle 2>&1
        sr_rc=$?
        sr_t2=$(cut -d' ' -f1 /proc/uptime)
        # CPU accounting from insertion to settled (scripts/lib/cpu.sh reads it), and devmgr's
        # own share (user and system clock ticks).
        echo "CPUSTAT cpus=$(grep -c '^processor' /proc/cpuinfo) $sr_cpu0 / $(head -n1 /proc/stat)"
        echo "CPUOWN cycle=$sr_c ticks $sr_own0 / $(scale_own_ticks "$sr_pid")"
        echo "SCALE devmgr cycle=$sr_c luns=$sr_luns inserted=$sr_t0 disks=$sr_t1 settled=$sr_t2 ndisks=$(scale_disks) nmod=$(wc -l </proc/modules) hwm_kb=$(scale_hwm "$sr_pid") rc=$sr_rc $(scale_rss "$sr_pid")"
        [ "$sr_rc" = 0 ] || sed 's/^/SETTLE /' /run/settle
        if [ "$sr_c" -lt "$sr_cycles" ]; then
            /sbin/rmmod scsi_debug
            scale_wait_disks 0
            /bin/devmgr settle --timeout 10m >/run/settle 2>&1 || sed 's/^/SETTLE /' /run/settle
        fi
        sr_c=$((sr_c + 1))
    done
    kill -USR1 "$sr_pid" 2>/dev/null && sleep 1
    echo 1 >/proc/sys/kernel/printk
    sed 's/^/SUMMARY /' /run/summary
    sed 's/^/LOG /' /run/log
    for m in $(cut -d' ' -f1 /proc/modules | sort); do echo "MOD $m"; done
}

scale_disks() { ls /sys/class/scsi_disk 2>/dev/null | wc -l; }

# scale_wait_disks N: until there are N sd disks (at most 300 s, polled every 100 ms as
# udevd-scale.sh does, so that the polling costs every run alike).
scale_wait_disks() {
    sw_i=0
    while [ "$(scale_disks)" -ne "$1" ] && [ "$sw_i" -lt 3000 ]; do
        sw_i=$((sw_i + 1))
        usleep 100000
    done
}

# devmgr's user and system time so far, in clock ticks.
scale_own_ticks() { cut -d' ' -f14,15 "/proc/$1/stat"; }

scale_hwm() { sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }

# Where the resident set is now: anon_kb= (heap, stacks) file_kb= (mapped code and data).
scale_rss() {
    awk '$1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 } END { printf "anon_kb=%s file_kb=%s", a, f }' "/proc/$1/status"
}
