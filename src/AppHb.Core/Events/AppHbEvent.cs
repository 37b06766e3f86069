using AppHb.Core.Heartbeats;

namespace AppHb.Core.Events;

/// <summary>One thing that happened on the node. Every subsystem publishes its events to the one
/// <see cref="EventStream"/>; logging, the supervisor, exporters and <c>apphbctl events</c> consume it.</summary>
public abstract record AppHbEvent
{
    /// <summary>Position in the stream, assigned on publish; strictly increasing.</summary>
    public long Sequence { get; internal set; }

    /// <summary>Wall-clock time of the event.</summary>
    public DateTimeOffset At { get; init; }

    /// <summary>Short lower-case name of the kind, as shown by apphbctl and logs.</summary>
    public abstract string Kind { get; }

    /// <summary>One line for humans.</summary>
    public abstract string Describe();
}

/// <summary>What happened to a heartbeat client.</summary>
public enum ClientEventKind
{
    Registered,
    Warn,
    Hung,
    Recovered,
    Died,
    Unregistered,
}

/// <summary>A heartbeat client changed state.</summary>
/// <param name="Late">For warn and hung: how long after the deadline the event was raised.</param>
/// <param name="Reason">For died: why the daemon considers the client dead.</param>
public sealed record ClientEvent(ClientEventKind ClientKind, ClientSnapshot Client, TimeSpan? Late = null, string? Reason = null)
    : AppHbEvent
{
    public override string Kind => ClientKind switch
    {
        ClientEventKind.Registered => "registered",
        ClientEventKind.Warn => "warn",
        ClientEventKind.Hung => "hung",
        ClientEventKind.Recovered => "recovered",
        ClientEventKind.Died => "died",
        ClientEventKind.Unregistered => "unregistered",
        _ => ClientKind.ToString().ToLowerInvariant(),
    };

    public override string Describe() => ClientKind switch
    {
        ClientEventKind.Registered =>
            $"client {Client.Label} (pid {Client.Pid}) registered, interval {Client.Interval.TotalMilliseconds:0} ms, warn {Client.Warn.TotalMilliseconds:0} ms",
        ClientEventKind.Warn =>
            $"client {Client.Label} (pid {Client.Pid}) is late: no heartbeat for {Client.LastBeatAge.TotalMilliseconds:0} ms (warn {Client.Warn.TotalMilliseconds:0} ms)",
        ClientEventKind.Hung =>
            $"client {Client.Label} (pid {Client.Pid}) is hung: no heartbeat for {Client.LastBeatAge.TotalMilliseconds:0} ms (interval {Client.Interval.TotalMilliseconds:0} ms)",
        ClientEventKind.Recovered => $"client {Client.Label} (pid {Client.Pid}) recovered: heartbeats resumed",
        ClientEventKind.Died => $"client {Client.Label} (pid {Client.Pid}) died without unregistering: {Reason}",
        ClientEventKind.Unregistered => $"client {Client.Label} (pid {Client.Pid}) unregistered",
        _ => $"client {Client.Label}: {Kind}",
    };
}

/// <summary>What happened to a supervised service.</summary>
public enum ServiceEventKind
{
    Started,
    Adopted,
    Ready,
    Exited,
    StartFailed,
    Restarting,
    Stopped,
    GaveUp,
    CheckFailed,
    CheckRecovered,
    HeartbeatLost,
    Alert,
    Reboot,
    Added,
    Changed,
    Removed,
}

/// <summary>A supervised service changed state, or one of its checks did.</summary>
/// <param name="IsFailure">A failure an operator must hear about (logged as an error, sent as a notification).</param>
public sealed record ServiceEvent(ServiceEventKind ServiceKind, string Service, int? Pid, string Detail, bool IsFailure = false) : AppHbEvent
{
    public override string Kind => ServiceKind switch
    {
        ServiceEventKind.StartFailed => "service-start-failed",
        ServiceEventKind.GaveUp => "service-gave-up",
        ServiceEventKind.CheckFailed => "check-failed",
        ServiceEventKind.CheckRecovered => "check-recovered",
        ServiceEventKind.HeartbeatLost => "heartbeat-lost",
        ServiceEventKind.Reboot => "reboot",
        _ => "service-" + ServiceKind.ToString().ToLowerInvariant(),
    };

    public override string Describe() => Pid is { } pid ? $"service {Service} (pid {pid}): {Detail}" : $"service {Service}: {Detail}";
}

/// <summary>Something the pair (level 3) decided or saw, as its <see cref="Cluster.FailoverMachine"/> or its host
/// published it.</summary>
public sealed record PairEvent(Cluster.ClusterEvent Event) : AppHbEvent
{
    private static readonly HashSet<string> Failures = new(StringComparer.Ordinal)
    {
        "fence-failed", "split-brain", "peer-silent", "dedicated-link-broken", "lan-fault", "link-dead", "ping-targets-lost",
        "release-refused", "command-failed", "handover-refused", "resolve-unconfirmed", "datagram-refused", "fenced-by-peer", "stale",
        "both-active", "takeover-refused", "release-superseded", "stray-service-ip",
    };

    public override string Kind => Event.Kind;

    /// <summary>The link it is about, if any.</summary>
    public string? Link => Event.Subject;

    /// <summary>A failure an operator must hear about (logged as an error).</summary>
    public bool IsFailure => Failures.Contains(Event.Kind);

    public override string Describe() => Event.Message;
}
