#!/bin/sh
# Runs inside the appliance VM after boot (apphb-rig.service). Reads apphb.scenario=X from the kernel command line,
# acts, and reports on the serial console as "RIG <uptime-seconds> <what>" lines the host test parses.
scenario=$(sed -n 's/.*apphb\.scenario=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
say() { echo "RIG $(cut -d' ' -f1 /proc/uptime) $*" > /dev/ttyS0; }
now_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
main_pid() { systemctl show -p MainPID --value apphbd.service; }
# Bounds are for failures only, and generous: under TCG on a busy host the guest runs several times slower.
wait_active() {
    for _ in $(seq 1 1800); do
        [ "$(systemctl is-active apphbd.service)" = active ] && [ "$(main_pid)" != 0 ] && return 0
        sleep 0.1
    done
    say "FAIL apphbd never became active"; systemctl status apphbd.service --no-pager > /dev/ttyS0 2>&1; return 1
}
wait_new_pid() { # old pid
    for _ in $(seq 1 3600); do
        pid=$(main_pid)
        [ "$pid" != 0 ] && [ "$pid" != "$1" ] && [ "$(systemctl is-active apphbd.service)" = active ] && return 0
        sleep 0.05
    done
    return 1
}
status_json() { apphbctl status --json | tr -d '\n'; }

say "BOOTED scenario=$scenario"
wait_active || { systemctl poweroff; exit 1; }
say "READY pid=$(main_pid)"
case "$scenario" in
a)
    say "STATUS $(status_json)"
    ;;
b)
    old=$(main_pid); t0=$(now_ms)
    kill -KILL "$old"
    wait_new_pid "$old" && say "RESTARTED after_ms=$(( $(now_ms) - t0 )) pid=$(main_pid)"
    sleep 40
    say "SURVIVED seconds_after_kill=40"
    ;;
c)
    old=$(main_pid); t0=$(now_ms)
    kill -STOP "$old"
    wait_new_pid "$old" && say "RESTARTED after_ms=$(( $(now_ms) - t0 )) pid=$(main_pid) watchdog_timeouts=$(journalctl -u apphbd.service -o cat --no-pager | grep -c 'Watchdog timeout')"
    sleep 35
    say "SURVIVED"
    ;;
d)
    if [ -f /var/lib/apphb-rig/d-phase1 ]; then
        say "STATUS $(status_json)"
        say "PREVIOUS $(journalctl -b -1 -u apphbd.service -o cat --no-pager | grep -E 'NODE REBOOT|feeding stopped' | tr '\n' ' ')"
    else
        mkdir -p /var/lib/apphb-rig && touch /var/lib/apphb-rig/d-phase1 && sync
        # The critical service "vital" starts failing for good: apphbd gives up on it, stops the services in order
        # and stops feeding the armed i6300esb. apphbd itself stays up and healthy (systemd sees nothing wrong).
        touch /run/apphb-rig-break-vital
        say "BROKE"
        for _ in $(seq 1 1800); do
            journalctl -u apphbd.service -o cat --no-pager | grep -q 'Watchdog feeding stopped' && break
            sleep 0.1
        done
        say "FEEDING-STOPPED $(status_json)"
        sleep 120
        say "FAIL no watchdog reset"
    fi
    ;;
f)
    # The service's process is apphbd's child (a sleep, exec'd by its shell): watch for the new one with pgrep, cheap
    # enough to poll every 20 ms (apphbctl itself takes about a second to start under TCG).
    demo_pid() { pgrep -P "$(main_pid)" -x sleep | head -1; }
    old=$(demo_pid); t0=$(now_ms)
    kill -KILL "$old"
    for _ in $(seq 1 3000); do
        new=$(demo_pid)
        [ -n "$new" ] && [ "$new" != "$old" ] && break
        sleep 0.02
    done
    t1=$(now_ms)
    say "RESPAWNED after_ms=$(( t1 - t0 )) old=$old new=$new restarts=$(apphbctl status --json | tr -d '\n' | sed 's/.*"name":"demo"[^}]*"restarts":\([0-9]*\).*/\1/') output_lines=$(journalctl -u apphbd.service -o cat --no-pager | grep -c 'demo\[.*demo service up')"
    ;;
g)
    v() { dpkg-query -W -f='${Version} ${db:Status-Abbrev}' apphb 2>/dev/null; }
    say "INSTALLED $(v) pid=$(main_pid)"
    old=$(main_pid)
    DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i /var/cache/apphb-rig/apphb-upgrade.deb > /tmp/upgrade.log 2>&1
    wait_new_pid "$old"
    say "UPGRADED rc=$? $(v) pid=$(main_pid) active=$(systemctl is-active apphbd.service) config_kept=$(grep -c '^  vital:' /etc/apphb/apphbd.yaml)"
    dpkg --purge apphb > /tmp/purge.log 2>&1
    say "PURGED rc=$? status=[$(v)] unit=$(systemctl is-active apphbd.service) binary=$(test -e /usr/sbin/apphbd && echo present || echo gone) config=$(test -e /etc/apphb && echo present || echo gone) magic_close=$(journalctl -u apphbd.service -o cat --no-pager | grep -c 'magic close')"
    sleep 40
    say "SURVIVED"
    dpkg -i /var/cache/apphb-rig/apphb.deb > /tmp/install.log 2>&1
    wait_active
    say "REINSTALLED rc=$? $(v) active=$(systemctl is-active apphbd.service) enabled=$(systemctl is-enabled apphbd.service)"
    ;;
p)
    # The standby's cut applier as the receiver runs it (each cut made durable in the receive log and acknowledged on
    # one thread, applied behind it on another) until the host cuts the power: the worker writes "ACK N" to the
    # console once cut N is in the log. The state (receive log, position, redo log) is on its own filesystem, the
    # second disk, when the host gives one: the replica's syncs then make none of it durable, the log's own sync must.
    # The boot after the power cut (the state is there) runs the recovery a restarted receiver runs first, on the
    # same filesystems (their journals replayed by the mounts), says "RECOVERED WHAT", and the host checks the replica.
    worker=/usr/local/lib/apphb-rig/AppHb.Replication.CrashWorker
    mkdir -p /var/lib/apphb-crash/statefs
    if [ -b /dev/vdb ]; then
        mount /dev/vdb /var/lib/apphb-crash/statefs || say "FAIL the state disk did not mount"
    fi
    if [ -d /var/lib/apphb-crash/statefs/state ]; then
        "$worker" recover /var/lib/apphb-crash/replica /var/lib/apphb-crash/statefs/state /dev/ttyS0 2> /dev/ttyS0 ||
            { say "FAIL the recovery failed (exit $?)"; dmesg | tail -n 8 > /dev/ttyS0; }
    else
        "$worker" /var/lib/apphb-crash/replica 4 /var/lib/apphb-crash/statefs/state received /dev/ttyS0 2> /dev/ttyS0
        say "FAIL the crash worker ended (exit $?)"
    fi
    ;;
q)
    # The active's journal: batch after batch of records, each batch synced, "SYNCED N" written to the console by the
    # worker itself once the batch ending at record N is, until the host cuts the power. The host reads it back.
    mkdir -p /var/lib/apphb-crash
    /usr/local/lib/apphb-rig/AppHb.Replication.CrashWorker journal /var/lib/apphb-crash/journal /dev/ttyS0 2> /dev/ttyS0
    say "FAIL the crash worker ended (exit $?)"
    ;;
e)
    systemctl stop apphbd.service
    say "STOPPED $(journalctl -u apphbd.service --no-pager -o cat | grep -c 'magic close')"
    sleep 40
    say "SURVIVED"
    ;;
esac
say "DONE"
systemctl poweroff
