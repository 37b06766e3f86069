namespace AppHb.Daemon.Configuration;

/// <summary>The embedded defaults: what apphbd runs with when a key is absent, and the commented file shipped as
/// /etc/apphb/apphbd.yaml. Keep both in this one place.</summary>
public static class DefaultConfiguration
{
    public const string Yaml = """
        # apphbd configuration (see apphbd.yaml(5)). Every key is optional; the values shown are the defaults.
        socket:
          # Unix stream socket clients register on.
          path: /run/apphb/apphbd.sock
          # Permission bits (octal, quoted) and owning group of the socket.
          mode: "0660"
          # group: apphb

        clients:
          # Most heartbeat clients at once; registrations beyond are refused.
          max: 100000
          # Most open connections of one uid; more are refused. Root and apphbd's own user beyond it may still ask for
          # status and control services (apphbctl), never register or subscribe.
          max-connections-per-uid: 4096
          # A connection that holds part of a frame this long is closed (Error TimedOut). Idle ones are never.
          read-timeout: 10s
          # A connection that does not read its reply this long is closed.
          send-timeout: 10s

        watchdog:
          # none (no hardware, same loop), linux (/dev/watchdogN) or gpio (external chip on a GPIO line).
          backend: none
          device: /dev/watchdog0
          # Hardware timeout: programmed into a linux driver; the chip's own for gpio.
          timeout: 60s
          # How often apphbd feeds it; at most half the timeout.
          period: 10s
          # gpio:
          #   chip: /dev/gpiochip0
          #   line: 17
          #   active-low: false
          #   enable-line: 18
          #   enable-active-low: true

        realtime:
          # Lock memory and run the tickle and event threads on a realtime policy, when permitted.
          enabled: true
          lock-memory: true
          policy: fifo
          priority: 50

        events:
          # Recent events kept for 'apphbctl events'.
          history: 256

        metrics:
          # Prometheus scrape endpoint, GET http://ADDRESS:PORT/metrics (Kestrel). Loopback only by default: expose
          # it on another address deliberately (there is no authentication), or "off".
          listen: 127.0.0.1:9747

        snmp:
          # apphbd serves APPHB-MIB (/usr/share/snmp/mibs/APPHB-MIB.txt) as an AgentX subagent of the system's snmpd,
          # and sends its notifications through it; snmpd keeps SNMP versions, communities, users and access control.
          # Where snmpd's master agent listens (its agentXSocket): a socket path, unix:PATH, tcp:127.0.0.1:705, or off.
          # snmpd needs "master agentx" (the package installs /etc/snmp/snmpd.conf.d/apphb.conf); apphbd reconnects whenever
          # snmpd restarts.
          agentx: /var/agentx/master

        # Services apphbd starts in dependency order, respawns, and checks (apphbd.yaml(5) has every key).
        # 'apphbctl reload' (or SIGHUP) applies changes here without restarting the others.
        # services:
        #   db:
        #     command: [/usr/sbin/mydb, --foreground]
        #     user: mydb
        #     readiness: notify            # READY=1 on $NOTIFY_SOCKET; or none, probe, or a delay like 2s
        #     heartbeat:                   # WATCHDOG=1 on $NOTIFY_SOCKET at least every interval
        #       source: notify
        #       interval: 10s
        #   web:
        #     command: [/usr/bin/myweb, --port, "8080"]
        #     requires: [db]               # starts once db is ready; restarts after db restarts
        #     critical: true               # if it gives up, the node reboots through the watchdog
        #     restart:
        #       max-restarts: 5            # more than 5 restarts within 60s: give up (then reboot, as critical)
        #       window: 60s
        #     checks:
        #       - type: http
        #         url: http://127.0.0.1:8080/health
        #         interval: 5s
        #         timeout: 2s
        #         failures: 3
        #         action: restart
        """;
}
