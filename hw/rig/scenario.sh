#!/bin/sh
# Runs inside the appliance VM after boot (apphb-rig.service). Reads apphb.scenario=X from the kernel command line,
# acts, and reports on the serial console as "RIG <uptime-seconds> <what>" lines the host test parses.
scenario=$(sed -n 's/.*apphb\.scenario=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
say() { echo "RIG $(cut -d' ' -f1 /proc/uptime) $*" > /dev/ttyS0; }
now_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
main_pid() { systemctl show -p MainPID --value apphbd.service; }
wait_active() {
    for _ in $(seq 1 600); do
        [ "$(systemctl is-active apphbd.service)" = active ] && [ "$(main_pid)" != 0 ] && return 0
        sleep 0.1
    done
    say "FAIL apphbd never became active"; systemctl status apphbd.service --no-pager > /dev/ttyS0 2>&1; return 1
}
wait_new_pid() { # old pid
    for _ in $(seq 1 1200); do
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
    else
        mkdir -p /var/lib/apphb-rig && touch /var/lib/apphb-rig/d-phase1 && sync
        # apphbd gone for good without an orderly stop: nobody feeds the armed i6300esb.
        mkdir -p /run/systemd/system/apphbd.service.d
        printf '[Service]\nRestart=no\n' > /run/systemd/system/apphbd.service.d/rig.conf
        systemctl daemon-reload
        say "LAST-TICKLE $(status_json)"
        kill -KILL "$(main_pid)"
        say "KILLED"
        sleep 120
        say "FAIL no watchdog reset"
    fi
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
