using System.Reflection;
using System.Text.Json;
using AppHb.Core.Events;
using AppHb.Core.Heartbeats;
using AppHb.Daemon.Loops;
using AppHb.Protocol;

namespace AppHb.Daemon.Status;

/// <summary>Builds the status and event documents that apphbctl, and later the exporters, read.</summary>
internal sealed class StatusReporter
{
    private readonly HeartbeatRegistry _registry;
    private readonly WatchdogTickler _tickler;
    private readonly DaemonHealth _health;
    private readonly Services.ServiceSupervisor _supervisor;
    private readonly Cluster.ClusterHost? _cluster;
    private readonly Cluster.ReplicationHost? _replication;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _startedAt;
    private readonly long _startedTimestamp;

    public StatusReporter(HeartbeatRegistry registry, WatchdogTickler tickler, DaemonHealth health, Services.ServiceSupervisor supervisor, TimeProvider time,
        Cluster.ClusterHost? cluster = null, Cluster.ReplicationHost? replication = null)
    {
        _cluster = cluster;
        _replication = replication;
        _supervisor = supervisor;
        _registry = registry;
        _tickler = tickler;
        _health = health;
        _time = time;
        _startedAt = time.GetUtcNow();
        _startedTimestamp = time.GetTimestamp();
    }

    public static string Version { get; } =
        typeof(StatusReporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public StatusDocument Build()
    {
        var snapshots = _registry.Snapshot();
        var clients = new List<ClientStatus>(snapshots.Count);
        foreach (var snapshot in snapshots)
        {
            clients.Add(ToStatus(snapshot));
        }

        return Build(clients, clients.Count);
    }

    /// <summary>The document without its client list (the metrics exporter reads the clients itself, as
    /// <see cref="ClientReading"/>s, without copying each into a record first).</summary>
    public StatusDocument BuildWithoutClients() => Build([], _registry.Count);

    /// <summary>The age every reader shows (status, metrics), to the microsecond.</summary>
    public static double LastBeatAgeMs(TimeSpan age) => Math.Round(age.TotalMilliseconds, 3);

    private StatusDocument Build(List<ClientStatus> clients, int clientCount)
    {
        var loop = _health.LoopLateness.Summarize();
        var tickle = _health.TickleLateness.Summarize();
        var device = _tickler.Device;
        var daemon = new DaemonStatus(Version, Environment.ProcessId, _startedAt, _time.GetElapsedTime(_startedTimestamp).TotalSeconds,
            _health.MemoryLocked, $"deadlines {_health.LoopScheduling}, tickle {_health.TickleScheduling}", clientCount, loop.P99Ms, loop.MaxMs,
            GC.GetTotalAllocatedBytes(), GC.GetGCMemoryInfo().HeapSizeBytes, GC.CollectionCount(0));
        var watchdog = new WatchdogStatus(
            device?.Backend ?? "unopened",
            device?.DevicePath,
            device?.Identity,
            device?.Timeout.TotalSeconds ?? 0,
            _tickler.Period.TotalSeconds,
            device?.TimeLeft?.TotalSeconds,
            _tickler.LastTickleAge?.TotalMilliseconds,
            _tickler.Tickles,
            _tickler.Withheld,
            device?.LastBootByWatchdog ?? false,
            device is null ? [] : FlagNames(device.BootStatus),
            tickle.P99Ms,
            tickle.MaxMs);
        return new StatusDocument(daemon, watchdog, clients, _supervisor.Snapshot(), _cluster?.Status(), _replication?.Status());
    }

    /// <summary>Runs every serialisation once, at start: whatever the runtime loads or initialises for them (an
    /// assembly, a type initializer) is done while descriptors are plentiful. Found at the open-file limit: the first
    /// status request there could not open System.Text.Encodings.Web, and the JSON context's failed initializer then
    /// failed every status for good.</summary>
    public void Warmup()
    {
        _ = SerializeStatus();
        _ = SerializeEvent(new ServiceEvent(ServiceEventKind.Started, "warmup", null, "warm-up") { At = DateTimeOffset.UnixEpoch });
        _ = JsonSerializer.SerializeToUtf8Bytes(new ControlResultDocument("warm-up", []), ProtocolJsonContext.Default.ControlResultDocument);
        _ = FrameWriter.ToArray(ErrorReply.Create(ErrorCode.Failed, "warm-up"), 0);
    }

    public byte[] SerializeStatus() => JsonSerializer.SerializeToUtf8Bytes(Build(), ProtocolJsonContext.Default.StatusDocument);

    public static byte[] SerializeEvent(AppHbEvent appEvent)
    {
        ArgumentNullException.ThrowIfNull(appEvent);
        var client = appEvent is ClientEvent c ? ToStatus(c.Client) : null;
        var late = appEvent is ClientEvent { Late: { } l } ? l.TotalMilliseconds : (double?)null;
        var document = new EventDocument(appEvent.Sequence, appEvent.At, appEvent.Kind, client, late, appEvent.Describe(), (appEvent as ServiceEvent)?.Service);
        return JsonSerializer.SerializeToUtf8Bytes(document, ProtocolJsonContext.Default.EventDocument);
    }

    private static ClientStatus ToStatus(ClientSnapshot c) => new(
        c.Id, c.Name, c.Instance, c.Pid, c.Uid, c.Gid, (uint)c.Interval.TotalMilliseconds, (uint)c.Warn.TotalMilliseconds,
        LastBeatAgeMs(c.LastBeatAge), StateName(c.State), c.Beats);

    // The cached names, not Enum.ToString().ToLowerInvariant(): two strings per client per scrape otherwise.
    private static string StateName(ClientState state) => ClientStates.Name(state);

    private static List<string> FlagNames(AppHb.Linux.Watchdog.WatchdogFlags flags) =>
        Enum.GetValues<AppHb.Linux.Watchdog.WatchdogFlags>().Where(f => f != 0 && flags.HasFlag(f)).Select(f => f.ToString()).ToList();
}
