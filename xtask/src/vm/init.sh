#!/bin/busybox sh
# /init of the vm-test initramfs: mount what tracer needs, run /tests.sh, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
# cgroup v2, for --cgroup.
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# Loopback, for tracer serve's HTTP.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
echo "VMTEST-KERNEL $(uname -r)"
sh /tests.sh
echo "VMTEST-DONE"
poweroff -f
