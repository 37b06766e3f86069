using System.Globalization;

namespace AppHb.Daemon.Systemd;

/// <summary>One sd_notify(3) assignment, in the shape of Microsoft.Extensions.Hosting.Systemd's ServiceState.</summary>
internal readonly record struct ServiceState(string Text)
{
    public static ServiceState Ready { get; } = new("READY=1");

    public static ServiceState Stopping { get; } = new("STOPPING=1");

    public static ServiceState Watchdog { get; } = new("WATCHDOG=1");

    /// <summary>RELOADING=1 with the monotonic timestamp Type=notify-reload requires (systemd 253+).</summary>
    public static ServiceState Reloading(long monotonicMicroseconds) =>
        new(string.Create(CultureInfo.InvariantCulture, $"RELOADING=1\nMONOTONIC_USEC={monotonicMicroseconds}"));

    /// <summary>STATUS=: one line, shown by systemctl status.</summary>
    public static ServiceState Status(string text) => new("STATUS=" + text.ReplaceLineEndings(" "));

    public override string ToString() => Text;
}
