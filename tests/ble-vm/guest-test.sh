#!/bin/sh
# The test inside the BLE guest (started by guest-init.sh). Leaves in
# /results: the two daemons' data dirs (a, b) and logs, an HCI trace of both
# controllers (btmon.txt), and `status` (one line: ok, or what failed). The
# host (run.sh) judges what happened from these.
set -u
. /opt/ble-vm/params

log() { echo "ble-vm[$(cut -d' ' -f1 /proc/uptime)s]: $*"; }
fail() {
    log "FAILED: $*"
    echo "failed: $*" >/results/status
    dmesg >/results/dmesg.txt 2>&1
    exit 1
}
# The emulator itself died (it has crashed now and then under TCG): not a
# verdict on meshtrace; run.sh boots the guest once more.
emulator_died() {
    log "btvirt (the emulated controllers) died: $*"
    echo "emulator: btvirt died $*" >/results/status
    dmesg >/results/dmesg.txt 2>&1
    exit 1
}
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    limit=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -ge "$((limit * 2))" ] && return 1
        sleep 0.5
    done
}

log "kernel $(uname -r), $(nproc) CPUs, scale x$SCALE, $DURATION s, carrier $CARRIER"

# --- The Bluetooth stack: kernel modules, D-Bus, bluetoothd, btvirt --------
modprobe bluetooth || fail "modprobe bluetooth"
modprobe hci_vhci || fail "modprobe hci_vhci"
[ -c /dev/vhci ] || fail "/dev/vhci is missing after modprobe hci_vhci"
dbus-uuidgen --ensure
mkdir -p /run/dbus
dbus-daemon --system --fork || fail "dbus-daemon"
bluetoothd -n >/results/bluetoothd.log 2>&1 &
wait_for 30 dbus-send --system --print-reply --dest=org.bluez / org.freedesktop.DBus.ObjectManager.GetManagedObjects || fail "bluetoothd did not appear on the system bus"
log "bluetoothd $(bluetoothd --version) is on the system bus"
# Two dual-mode controllers (LE-only ones, -L, refuse BlueZ's advertisement
# registration: "Failed to register advertisement"; see docs/ble-vm.md).
btvirt -l2 >/results/btvirt.log 2>&1 &
btvirt_pid=$!
wait_for 30 test -e /sys/class/bluetooth/hci1 || fail "btvirt created no hci0/hci1"
for i in 0 1; do
    wait_for 30 sh -c "btmgmt --index $i info | grep -q 'current settings'" ||
        fail "hci$i does not answer btmgmt"
    btmgmt --index $i power on >/dev/null
done
btmgmt info | grep -E '^hci|addr|current settings' | sed 's/^[[:space:]]*/    /'
# The HCI trace of both controllers: what the virtual air carried.
btmon -w /results/hci.snoop >/dev/null 2>&1 &
btmon_pid=$!

# --- Two meshtrace daemons, one per controller -------------------------------
origin=$(date +%s%3N)
for n in a b; do
    meshtrace --data-dir /results/$n init --network ble-vm --radio ble >/dev/null ||
        fail "meshtrace init $n"
done
export RUST_LOG=info,meshtrace_node::radio::ble=debug,libp2p_swarm=warn
start() {
    meshtrace --data-dir "/results/$1" run --radio ble --adapter "$2" --carrier "$CARRIER" \
        --listen /ip4/127.0.0.1/tcp/0 --no-mdns \
        --time-scale "$SCALE" --time-origin "$origin" >"/results/$1.log" 2>&1 &
}
start a hci0
pid_a=$!
start b hci1
pid_b=$!
for n in a b; do
    wait_for 120 meshtrace --data-dir /results/$n status ||
        { cat /results/$n.log; fail "daemon $n did not come up"; }
done
log "daemons up: a on hci0 (pid $pid_a), b on hci1 (pid $pid_b)"

elapsed=0
while [ "$elapsed" -lt "$DURATION" ]; do
    sleep 30
    elapsed=$((elapsed + 30))
    # Test of run.sh's retry (BLE_VM_KILL_EMULATOR_ONCE=1): the emulator dies.
    [ "${KILL_EMULATOR:-0}" = 1 ] && kill -9 "$btvirt_pid" && sleep 2
    kill -0 "$btvirt_pid" 2>/dev/null || emulator_died "after $elapsed s of the daemons' run"
    for n in a b; do
        kill -0 "$(eval echo \$pid_$n)" 2>/dev/null || { cat /results/$n.log; fail "daemon $n died"; }
        log "$n: $(meshtrace --data-dir /results/$n status --json |
            grep -oE '"(kind|sightings|malformed|encounters|open_encounters|now_utc)":[^,}]*' |
            tr '\n' ' ')"
    done
done

# --- Graceful stop: open encounters are closed and flushed --------------------
kill -0 "$btvirt_pid" 2>/dev/null || emulator_died "in the last 30 s of the daemons' run"
for n in a b; do
    meshtrace --data-dir /results/$n status --json >/results/$n.status.json
    grep -q '"failures":0' /results/$n.status.json ||
        fail "daemon $n reported radio failures: $(grep -o '"last_failure":{[^}]*}' /results/$n.status.json)"
done
kill -TERM "$pid_a" "$pid_b"
for p in "$pid_a" "$pid_b"; do
    wait "$p" || fail "a daemon exited with status $? on SIGTERM"
done
kill -INT "$btmon_pid" "$btvirt_pid" 2>/dev/null
wait "$btmon_pid" 2>/dev/null
btmon -r /results/hci.snoop >/results/btmon.txt 2>&1
dmesg >/results/dmesg.txt 2>&1
for n in a b; do
    log "$n.log (BLE lines):"
    grep -E "BLE|radio" /results/$n.log | sed -n '1,12p;$p' | sed 's/^/    /'
done
echo ok >/results/status
log "guest test finished"
