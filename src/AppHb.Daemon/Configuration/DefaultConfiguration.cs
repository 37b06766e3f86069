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
        """;
}
