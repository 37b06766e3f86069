using System.Globalization;
using System.Text;
using AppHb.Protocol;

namespace AppHb.Cli;

/// <summary>Renders the status document for a terminal.</summary>
internal static class StatusPrinter
{
    private static readonly string[] Headings = ["CLIENT", "PID", "INTERVAL", "WARN", "LAST BEAT", "STATE", "BEATS"];

    public static string Render(StatusDocument status)
    {
        var d = status.Daemon;
        var w = status.Watchdog;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"apphbd {d.Version} (pid {d.Pid}), up {Durations.Format(d.UptimeSeconds * 1000)}, {d.Clients} client(s)");
        text.AppendLine(CultureInfo.InvariantCulture, $"  memory {(d.MemoryLocked ? "locked" : "not locked")}; {d.Scheduling}; deadline loop lateness p99 {d.LoopLatenessP99Ms:0.###} ms, max {d.LoopLatenessMaxMs:0.###} ms");
        text.AppendLine(CultureInfo.InvariantCulture, $"watchdog {w.Backend} {w.Device ?? "-"}{(w.Identity is null ? string.Empty : $" ({w.Identity})")}");
        var lastTickle = w.LastTickleAgeMs is { } age ? $"{Durations.Format(age)} ago" : "never";
        var left = w.TimeLeftSeconds is { } s ? $", time left {s:0} s" : string.Empty;
        text.AppendLine(CultureInfo.InvariantCulture, $"  timeout {w.TimeoutSeconds:0.###} s, tickle every {w.PeriodSeconds:0.###} s, last tickle {lastTickle}{left}, tickles {w.Tickles}, withheld {w.Withheld}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  tickle lateness p99 {w.TickleLatenessP99Ms:0.###} ms, max {w.TickleLatenessMaxMs:0.###} ms");
        var boot = w.LastBootByWatchdog ? "LAST RESET WAS CAUSED BY THE WATCHDOG" : "normal";
        text.AppendLine(CultureInfo.InvariantCulture, $"  boot status: {boot}{(w.BootStatus.Count > 0 ? $" ({string.Join(", ", w.BootStatus)})" : string.Empty)}");
        if (status.Clients.Count == 0)
        {
            text.AppendLine("no clients");
            return text.ToString();
        }

        var rows = new List<string[]> { Headings };
        rows.AddRange(status.Clients.Select(c => new[]
        {
            c.Instance.Length == 0 ? c.Name : $"{c.Name}/{c.Instance}",
            c.Pid.ToString(CultureInfo.InvariantCulture),
            Durations.Format(c.IntervalMs),
            c.WarnMs == 0 ? "-" : Durations.Format(c.WarnMs),
            Durations.Format(c.LastBeatAgeMs) + " ago",
            c.State,
            c.Beats.ToString(CultureInfo.InvariantCulture),
        }));
        var widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        foreach (var row in rows)
        {
            text.AppendLine(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
        }

        return text.ToString();
    }
}
