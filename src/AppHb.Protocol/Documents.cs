using System.Text.Json;
using System.Text.Json.Serialization;

namespace AppHb.Protocol;

/// <summary>The document in a <see cref="FrameType.Status"/> frame.</summary>
public sealed record StatusDocument(DaemonStatus Daemon, WatchdogStatus Watchdog, IReadOnlyList<ClientStatus> Clients);

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
public sealed record EventDocument(
    long Sequence,
    DateTimeOffset At,
    string Kind,
    ClientStatus? Client,
    double? LateMs,
    string Message);

/// <summary>Serializer settings shared by the daemon and every reader: snake_case, no reflection.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = false,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(StatusDocument))]
[JsonSerializable(typeof(EventDocument))]
public sealed partial class ProtocolJsonContext : JsonSerializerContext
{
    /// <summary>Decodes a status payload.</summary>
    public static StatusDocument ReadStatus(ReadOnlySpan<byte> payload) => Parse(payload, Default.StatusDocument, "Status");

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
