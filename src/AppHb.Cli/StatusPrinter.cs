using System.Globalization;
using System.Text;
using AppHb.Protocol;

namespace AppHb.Cli;

/// <summary>Renders the status document for a terminal.</summary>
internal static class StatusPrinter
{
    private static readonly string[] ServiceHeadings = ["SERVICE", "STATE", "PID", "FOR", "RESTARTS", "LAST EXIT", "CHECKS"];
    private static readonly string[] LinkHeadings = ["LINK", "KIND", "INTERFACE", "PEER", "STATE", "LAST HEARD"];
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
        if (status.Cluster is { } pair)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"pair: {pair.Node} {pair.Role}, {pair.Peer} {pair.PeerRole ?? "unheard"}; links {string.Join(", ", pair.Links.Select(l => $"{l.Name} {l.State}"))}{(pair.SplitBrain ? "; SPLIT BRAIN" : string.Empty)} (apphbctl cluster)");
        }

        RenderServices(status.Services, text);
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
        Table(rows, text);
        return text.ToString();
    }

    /// <summary>The pair: what <c>apphbctl cluster</c> prints.</summary>
    public static string RenderCluster(ClusterStatus c)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"node {c.Node}{(c.Preferred ? " (preferred)" : string.Empty)}: {c.Role}{(c.Standby ? ", held standby" : string.Empty)}; generation {c.Generation}");
        text.AppendLine(CultureInfo.InvariantCulture, $"peer {c.Peer}: {c.PeerRole ?? "not heard since apphbd started"}; generation {c.PeerGeneration ?? "-"}{(c.PeerFenced ? "; FENCED" : string.Empty)}");
        var data = c.SplitBrain ? "SPLIT BRAIN: the generations diverged; nothing moves until `apphbctl cluster resolve --survivor NODE`"
            : c.Stale ? "this node's data is older than the peer's: it must catch up before it may become active"
            : c.InSync ? "in sync" : "not in sync";
        text.AppendLine(CultureInfo.InvariantCulture, $"links say: {c.Verdict ?? "-"}; data: {data}");
        text.AppendLine(CultureInfo.InvariantCulture, $"group {(c.Group.Count == 0 ? "-" : string.Join(", ", c.Group))}: {(c.GroupRunning ? "running here" : "not running here")}; service IP {(c.ServiceIps.Count == 0 ? "-" : string.Join(", ", c.ServiceIps))}");
        var peerReach = c.PeerReachesPingTargets is { } p ? (p ? "reached by the peer" : "NOT reached by the peer") : "peer unknown";
        text.AppendLine(CultureInfo.InvariantCulture, $"ping targets {(c.PingTargets.Count == 0 ? "-" : string.Join(", ", c.PingTargets))}: {(c.ReachesPingTargets ? "reached" : "NOT reached")} here, {peerReach}");
        var fence = c.LastFence is { } f ? $"{f.At.ToLocalTime():yyyy-MM-dd HH:mm:ss} {f.Method} {(f.Confirmed ? "confirmed" : "FAILED")}: {f.Detail}" : "none since apphbd started";
        text.AppendLine(CultureInfo.InvariantCulture, $"last fence: {fence}; takeovers {c.Takeovers}; datagrams refused {c.DatagramsRefused}");
        var rows = new List<string[]> { LinkHeadings };
        rows.AddRange(c.Links.Select(l => new[]
        {
            l.Name, l.Kind, l.Interface, l.PeerAddress, l.State, l.LastHeardAgeMs is { } age ? Durations.Format(age) + " ago" : "never",
        }));
        Table(rows, text);
        return text.ToString();
    }

    /// <summary>Replication: what <c>apphbctl replication status</c> prints.</summary>
    public static string RenderReplication(ReplicationStatus r)
    {
        var text = new StringBuilder();
        var side = r.Side switch
        {
            "source" => string.Create(CultureInfo.InvariantCulture, $"{r.Path}: source (active node); journaled to record {r.Journaled}, the peer confirmed {r.Acknowledged} (lag {r.LagRecords} records, {r.LagBytes} bytes, {r.LagSeconds:0.000} s); resyncs {r.Resyncs}{(r.Resyncs > 0 ? (r.LastResyncPaths is { } paths ? $" (the last compared the {paths} paths changed while apart)" : " (the last compared the whole tree)") : string.Empty)}{(r.SentBytes is { } sent && r.SentCompressedBytes is { } wire && wire < sent ? $"; sent {sent} bytes, {wire} compressed" : string.Empty)}{(r.ResyncTotalBytes is { } total ? $"; a difference resync is under way: {r.ResyncSentBytes} of {total} bytes sent" : r.Resyncing ? "; the peer's replica is not compared yet: a difference resync is due" : string.Empty)}"),
            "replica" => string.Create(CultureInfo.InvariantCulture, $"{r.Path}: replica (standby); applied to record {r.Applied} ({r.AppliedGeneration}){(r.Resyncing ? "; a difference resync is under way" : string.Empty)}"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{r.Path}: idle (this node is taking over, or its side failed to start: see the events)"),
        };
        text.AppendLine(side);
        text.AppendLine(CultureInfo.InvariantCulture, $"connections {r.Connections}; last ended: {r.LastEnded ?? "-"}");
        if (r.LastVerify is { } v)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"last verify {v.At:u}{(v.Repaired ? " (after a repair)" : string.Empty)}: {(v.Differences == 0 ? "identical" : $"{v.Differences} differences")}, {v.Compared} entries compared at record {v.Cut}, {v.Changing} changing");
        }

        return text.ToString();
    }

    /// <summary>One service: what <c>apphbctl status NAME</c> prints.</summary>
    public static string RenderService(ServiceStatus s)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{s.Name}: {s.State}{(s.Pid is { } pid ? $" (pid {pid}{(s.Adopted ? ", adopted from its pidfile" : string.Empty)})" : string.Empty)} for {Durations.Format(s.StateAgeSeconds * 1000)}{(s.Critical ? ", CRITICAL" : string.Empty)}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  wanted {(s.Wanted ? "yes" : "no")}, restarts {s.Restarts}, last exit {s.LastExit ?? "-"}");
        if (s.Requires.Count > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  requires {string.Join(", ", s.Requires)}{(s.WaitingFor is { } w ? $"; waiting for {w}" : string.Empty)}");
        }

        if (s.StatusText is { } status)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  status: {status}");
        }

        foreach (var c in s.Checks)
        {
            var state = c.Passing switch { true => "passing", false => "FAILING", null => "not run yet" };
            text.AppendLine(CultureInfo.InvariantCulture, $"  check {c.Name} ({c.Kind}, {c.Depth}): {state}, {c.ConsecutiveFailures} consecutive failure(s), {c.Runs} run(s), last {c.LastDurationMs:0.###} ms: {c.LastMessage}");
        }

        return text.ToString();
    }

    private static void RenderServices(IReadOnlyList<ServiceStatus> services, StringBuilder text)
    {
        if (services.Count == 0)
        {
            return;
        }

        var rows = new List<string[]> { ServiceHeadings };
        rows.AddRange(services.Select(s => new[]
        {
            s.Name + (s.Critical ? " (critical)" : string.Empty),
            s.State + (s.WaitingFor is { } w ? $" for {w}" : string.Empty),
            s.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-",
            Durations.Format(s.StateAgeSeconds * 1000),
            s.Restarts.ToString(CultureInfo.InvariantCulture),
            s.LastExit ?? "-",
            s.Checks.Count == 0 ? "-" : string.Join(" ", s.Checks.Select(c => $"{c.Name}:{(c.Passing switch { true => "ok", false => "FAIL", null => "?" })}")),
        }));
        Table(rows, text);
    }

    private static void Table(List<string[]> rows, StringBuilder text)
    {
        var widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        foreach (var row in rows)
        {
            text.AppendLine(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}
