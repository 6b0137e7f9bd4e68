#!/usr/bin/env bash
# Makes the seed inputs of the uevent_parse fuzz target: the captured kernel datagrams and sysfs
# uevent files of crates/uevent/tests/fixtures, plus crafted datagrams for the edge cases of
# the parsers (synthetic events, repeated keys, values with newlines, SEQNUM limits, the
# libudev frame, sysfs files with a devpath line in front).
#
# Usage: fuzz/seeds/uevent_parse.sh OUT_DIR
set -euo pipefail

out=${1:?usage: $0 OUT_DIR}
fixtures="$(dirname "$0")/../../crates/uevent/tests/fixtures"
mkdir -p "$out"

for f in "$fixtures"/*.bin; do cp "$f" "$out/kernel-$(basename "$f" .bin)"; done
for f in "$fixtures"/sysfs/*.uevent; do
    name=$(basename "$f" .uevent)
    cp "$f" "$out/sysfs-$name"
    # The first line is used as the devpath when the input holds a newline.
    { printf '/devices/virtual/%s\n' "$name"; cat "$f"; } >"$out/sysfs-devpath-$name"
done

dp=/devices/pci0000:00/0000:00:05.0
k() { printf "$@"; }
k 'add@%s\0ACTION=add\0DEVPATH=%s\0SUBSYSTEM=pci\0SYNTH_UUID=4d3b1e7a-0c1f-4f59-9d6e-2d4a3c1b0f00\0SYNTH_ARG_A=1\0SYNTH_ARG_B=two\0MODALIAS=pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\0SEQNUM=18446744073709551615\0' $dp $dp >"$out/crafted-synthetic"
k 'change@%s\0ACTION=change\0DEVPATH=%s\0SUBSYSTEM=block\0DEVNAME=vda\0MAJOR=254\0MINOR=0\0DEVTYPE=disk\0DISKSEQ=9\0MAJOR=253\0SEQNUM=0000042\0' $dp $dp >"$out/crafted-repeats"
k 'bind@%s\0ACTION=bind\0DEVPATH=%s\0SUBSYSTEM=pci\0DRIVER=virtio-pci\nextra\0KEY=a=b=c\0SEQNUM=7\0' $dp $dp >"$out/crafted-newline-value"
k 'move@/devices/virtual/net/eth1\0ACTION=move\0DEVPATH=/devices/virtual/net/eth1\0SUBSYSTEM=net\0DEVPATH_OLD=/devices/virtual/net/eth0\0INTERFACE=eth1\0IFINDEX=3\0SEQNUM=1\0' >"$out/crafted-move"
k 'offline@/devices/system/cpu/cpu1\0ACTION=offline\0DEVPATH=/devices/system/cpu/cpu1\0SUBSYSTEM=cpu\0SEQNUM=18446744073709551616\0' >"$out/crafted-seqnum-overflow"
k 'remove@/devices/a/../b\0ACTION=remove\0DEVPATH=/devices/a/../b\0SUBSYSTEM=x\0SEQNUM=2\0' >"$out/crafted-dotdot"
k 'libudev\0\xfe\xed\xca\xfe\x28\0\0\0' >"$out/crafted-libudev"
k 'DRIVER=virtio_net\nMODALIAS=virtio:d00000001v00001AF4\nSYNTH_UUID=0\n\nINTERFACE=eth0\nIFINDEX=2\n' >"$out/crafted-sysfs"
k '/devices/platform/serial8250/tty/ttyS0\nMAJOR=4\nMINOR=64\nDEVNAME=ttyS0\nSYNTH_ARG_X=y\n' >"$out/crafted-sysfs-devpath"
ls -l "$out"
