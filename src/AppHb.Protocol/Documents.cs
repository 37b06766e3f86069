using System.Text.Json;
using System.Text.Json.Serialization;

namespace AppHb.Protocol;

/// <summary>The document in a <see cref="FrameType.Status"/> frame.</summary>
/// <param name="Cluster">This node's side of the pair; null on a single node.</param>
/// <param name="Replication">This node's side of replication; null when it replicates nothing.</param>
public sealed record StatusDocument(DaemonStatus Daemon, WatchdogStatus Watchdog, IReadOnlyList<ClientStatus> Clients, IReadOnlyList<ServiceStatus> Services,
    ClusterStatus? Cluster = null, ReplicationStatus? Replication = null);

/// <summary>This node's side of replication (issue 14's `apphbctl replication status`).</summary>
/// <param name="Side">source (the active node: capture, journal, sender), replica (the standby: receiver, applier)
/// or idle (taking over, or the side failed to start).</param>
/// <param name="Connections">Replication connections since apphbd started.</param>
/// <param name="LastEnded">Why the latest connection ended; null if none has.</param>
/// <param name="Journaled">Source: the journal's last record.</param>
/// <param name="Acknowledged">Source: the last record the peer confirmed applied and durable.</param>
/// <param name="Applied">Replica: the last record of the last cut applied; AppliedGeneration its data generation.</param>
/// <param name="LagSeconds">Source: how long the oldest change the peer has not acknowledged has waited (0 when it has
/// them all): the data a crash now would lose, in time.</param>
/// <param name="Resyncs">Difference resyncs this node started as the source since apphbd started.</param>
/// <param name="Resyncing">A difference resync is due or under way (source: the peer's replica is not compared yet).</param>
/// <param name="LastVerify">The last `apphbctl replication verify` on this node since apphbd started; null if none.</param>
/// <param name="LagBytes">Source: how many bytes of the journal the peer has not acknowledged (the data a crash now
/// would lose, in journal bytes).</param>
/// <param name="ResyncSentBytes">Source, while a difference resync is sent and not yet confirmed: its bytes sent so
/// far; ResyncTotalBytes its bytes in all (what differed).</param>
/// <param name="CaptureOverflows">Source: times the kernel's notification queue overflowed since this side started
/// (each made the journaler compare the whole tree with what the peer has: nothing is lost, it costs reads).</param>
/// <param name="LastResyncPaths">Source: how many paths the last difference resync compared (the paths changed while
/// the replica was apart); null when it compared the whole tree, or none ran.</param>
/// <param name="SentBytes">Source: bytes of messages sent to the peer since this side started; SentCompressedBytes
/// as they went on the wire (with `compress`, what deflating saved is the difference; before sealing).</param>
public sealed record ReplicationStatus(
    string Path,
    string Side,
    long Connections,
    string? LastEnded,
    ulong? Journaled,
    ulong? Acknowledged,
    double? LagSeconds,
    ulong? Applied,
    string? AppliedGeneration,
    long Resyncs,
    bool Resyncing,
    VerifyStatus? LastVerify = null,
    long? LagBytes = null,
    long? ResyncSentBytes = null,
    long? ResyncTotalBytes = null,
    long? CaptureOverflows = null,
    int? LastResyncPaths = null,
    long? SentBytes = null,
    long? SentCompressedBytes = null)
{
    /// <summary>Source: records journaled and not yet confirmed by the peer (lag_records in the document).</summary>
    public ulong? LagRecords => Journaled is { } journaled && Acknowledged is { } acknowledged
        ? journaled - Math.Min(journaled, acknowledged)
        : null;
}

/// <summary>What a verify found: the replica at record <paramref name="Cut"/> compared with the active's tree,
/// <paramref name="Compared"/> entries (<paramref name="Changing"/> left out: changed meanwhile), and how many
/// differed; <paramref name="Repaired"/>: the result after a repair's resync; <paramref name="Verifies"/>: verifies
/// run on this node since apphbd started, this one included.</summary>
public sealed record VerifyStatus(DateTimeOffset At, ulong Cut, int Compared, int Changing, int Differences, bool Repaired, long Verifies);

/// <summary>This node's side of the pair (level 3).</summary>
/// <param name="Role">starting, standby, taking-over, active or releasing; PeerRole likewise, null before the peer was heard.</param>
/// <param name="Verdict">What the links say: starting, healthy, dedicated-link-broken, lan-fault, peer-silent or
/// links-returning; null before the peer was heard.</param>
/// <param name="Generation">This node's data generation ("number@node"); PeerGeneration the peer's, as last heard.</param>
/// <param name="Standby">`apphbctl standby` (or a fence by the peer over the dedicated link) keeps this node from becoming active.</param>
/// <param name="DatagramsRefused">Peer datagrams refused since apphbd started (forged, replayed, foreign, truncated).</param>
public sealed record ClusterStatus(
    string Node,
    string Peer,
    bool Preferred,
    string Role,
    string? PeerRole,
    string? Verdict,
    string Generation,
    string? PeerGeneration,
    bool InSync,
    bool SplitBrain,
    bool Stale,
    bool Standby,
    bool PeerFenced,
    bool GroupRunning,
    IReadOnlyList<string> Group,
    IReadOnlyList<string> ServiceIps,
    IReadOnlyList<string> PingTargets,
    bool ReachesPingTargets,
    bool? PeerReachesPingTargets,
    IReadOnlyList<ClusterLinkStatus> Links,
    ClusterFenceStatus? LastFence,
    long Takeovers,
    long DatagramsRefused);

/// <summary>One link to the peer.</summary>
/// <param name="State">unknown, up, late, dead or returning.</param>
/// <param name="LastHeardAgeMs">How long since the peer was last heard on it; null if never since apphbd started.</param>
public sealed record ClusterLinkStatus(string Name, string Kind, string Interface, string PeerAddress, string State, double? LastHeardAgeMs);

/// <summary>The latest fence of the peer.</summary>
public sealed record ClusterFenceStatus(DateTimeOffset At, string Method, bool Confirmed, string Detail);

/// <summary>One supervised service.</summary>
/// <param name="State">waiting, starting, running, stopping, backoff, stopped, exited or failed.</param>
/// <param name="Wanted">The supervisor means it to run (false after apphbctl stop, a do-not-restart exit, or give-up).</param>
/// <param name="StateAgeSeconds">How long it has been in this state.</param>
/// <param name="WaitingFor">The requirement a waiting service waits for.</param>
/// <param name="StatusText">The last STATUS= it sent on its NOTIFY_SOCKET.</param>
/// <param name="LastExit">How it last ended, for people ("exit code 3", "signal 9 (SIGKILL)", "start failed: …").</param>
/// <param name="LastExitCode">The exit code of its last exit, when it exited (not killed, not unknown).</param>
/// <param name="LastExitSignal">The signal that killed it last, when one did.</param>
public sealed record ServiceStatus(
    string Name,
    string State,
    bool Wanted,
    int? Pid,
    bool Adopted,
    bool Critical,
    double StateAgeSeconds,
    long Restarts,
    string? LastExit,
    string? WaitingFor,
    string? StatusText,
    IReadOnlyList<string> Requires,
    IReadOnlyList<CheckStatus> Checks,
    int? LastExitCode = null,
    int? LastExitSignal = null);

/// <summary>One check of a service (API checks, and the heartbeat check as kind "heartbeat").</summary>
/// <param name="Passing">null before the first run.</param>
public sealed record CheckStatus(
    string Name,
    string Kind,
    string Depth,
    bool? Passing,
    int ConsecutiveFailures,
    long Runs,
    long Failures,
    double LastDurationMs,
    string LastMessage);

/// <summary>The reply to a <see cref="FrameType.Control"/> request.</summary>
/// <param name="Lines">Output lines (for logs) or one line per change (for reload).</param>
public sealed record ControlResultDocument(string Message, IReadOnlyList<string> Lines);

/// <summary>The daemon's own health.</summary>
/// <param name="LoopLatenessP99Ms">How late the deadline loop woke, p99 over the recent window: it bounds event delay.</param>
/// <param name="AllocatedBytes">Managed bytes allocated since start (GC.GetTotalAllocatedBytes): the hot path should not move it.</param>
/// <param name="GcCollections">Garbage collections since start, all generations.</param>
public sealed record DaemonStatus(
    string Version,
    int Pid,
    DateTimeOffset StartedAt,
    double UptimeSeconds,
    bool MemoryLocked,
    string Scheduling,
    int Clients,
    double LoopLatenessP99Ms,
    double LoopLatenessMaxMs,
    long AllocatedBytes,
    long GcHeapBytes,
    int GcCollections);

/// <summary>The level-0 watchdog as the tickle loop sees it.</summary>
/// <param name="LastBootByWatchdog">The device's boot status says the last reset was the watchdog's.</param>
/// <param name="Withheld">Tickles skipped because the event loop had not proved alive.</param>
public sealed record WatchdogStatus(
    string Backend,
    string? Device,
    string? Identity,
    double TimeoutSeconds,
    double PeriodSeconds,
    double? TimeLeftSeconds,
    double? LastTickleAgeMs,
    long Tickles,
    long Withheld,
    bool LastBootByWatchdog,
    IReadOnlyList<string> BootStatus,
    double TickleLatenessP99Ms,
    double TickleLatenessMaxMs);

/// <summary>One registered heartbeat client.</summary>
/// <param name="State">healthy, warn or hung.</param>
public sealed record ClientStatus(
    ulong Id,
    string Name,
    string Instance,
    int Pid,
    uint Uid,
    uint Gid,
    uint IntervalMs,
    uint WarnMs,
    double LastBeatAgeMs,
    string State,
    long Beats);

/// <summary>The document in an <see cref="FrameType.Event"/> frame.</summary>
/// <param name="Kind">warn, hung, recovered, died, unregistered, registered, or a later subsystem's kind.</param>
/// <param name="LateMs">For warn and hung: how long after its deadline the event was raised.</param>
/// <param name="Service">For service events: the service's name.</param>
public sealed record EventDocument(
    long Sequence,
    DateTimeOffset At,
    string Kind,
    ClientStatus? Client,
    double? LateMs,
    string Message,
    string? Service = null);

/// <summary>Serializer settings shared by the daemon and every reader: snake_case, no reflection.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = false,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(StatusDocument))]
[JsonSerializable(typeof(EventDocument))]
[JsonSerializable(typeof(ControlResultDocument))]
[JsonSerializable(typeof(ServiceStatus))]
[JsonSerializable(typeof(ClusterStatus))]
[JsonSerializable(typeof(ReplicationStatus))]
public sealed partial class ProtocolJsonContext : JsonSerializerContext
{
    /// <summary>Decodes a status payload.</summary>
    public static StatusDocument ReadStatus(ReadOnlySpan<byte> payload) => Parse(payload, Default.StatusDocument, "Status");

    /// <summary>Decodes a control result payload.</summary>
    public static ControlResultDocument ReadControlResult(ReadOnlySpan<byte> payload) => Parse(payload, Default.ControlResultDocument, "ControlResult");

    /// <summary>Decodes an event payload.</summary>
    public static EventDocument ReadEvent(ReadOnlySpan<byte> payload) => Parse(payload, Default.EventDocument, "Event");

    private static T Parse<T>(ReadOnlySpan<byte> payload, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info, string frame)
    {
        try
        {
            return JsonSerializer.Deserialize(payload, info)
                ?? throw new ProtocolException(ErrorCode.Malformed, $"{frame} frame: the JSON document is null");
        }
        catch (JsonException e)
        {
            throw new ProtocolException(ErrorCode.Malformed, $"{frame} frame: invalid JSON document: {e.Message}");
        }
    }
}
