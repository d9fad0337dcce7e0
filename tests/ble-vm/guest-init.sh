#!/bin/sh
# PID 1 of the BLE test guest (see run.sh): brings up a real BlueZ stack on
# two virtual LE controllers, runs two `meshtrace run --radio ble` daemons on
# them, leaves everything in /results and powers the guest off.
#
# Parameters come from /opt/ble-vm/params (written by run.sh): SCALE (clock
# speed-up), DURATION (real seconds the daemons run), CARRIER.
export PATH=/opt/ble-vm:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/libexec/bluetooth
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -o remount,rw /
echo 1 >/proc/sys/kernel/sysrq

mkdir -p /results
# Console and /results/guest.log both get every line of the test.
/opt/ble-vm/guest-test.sh 2>&1 | tee /results/guest.log >/dev/console
sync
echo o >/proc/sysrq-trigger
sleep 60
