using AppHb.Daemon.Configuration;
using AppHb.Export.Snmp;
using AppHb.Protocol;

namespace AppHb.Daemon.Export;

/// <summary>APPHB-MIB's values, read from the status snapshot. One snapshot serves every request for a second: a walk
/// of 1,000 clients is eight thousand AgentX requests (snmpd sends one per varbind), and they must read one consistent
/// table, cheaply (net-snmp's own table handlers cache the same way). The tables produce cells on demand from the
/// snapshot's records, so a refresh allocates the snapshot and little else: apphbd's realtime threads are managed
/// threads, and every collection pauses them.</summary>
internal sealed class StatusMib
{
    /// <summary>How long one snapshot answers requests.</summary>
    public static readonly TimeSpan Freshness = TimeSpan.FromSeconds(1);

    private readonly Func<StatusDocument> _status;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, uint> _serviceIndexes = new(StringComparer.Ordinal);
    private ObjectStore _store = ObjectStore.Empty;
    private long? _builtAt;

    /// <param name="status">Reads the status snapshot (StatusReporter.Build).</param>
    public StatusMib(Func<StatusDocument> status, ApphbdOptions options, TimeProvider time)
    {
        _status = status;
        _time = time;
        foreach (var service in options.Services)
        {
            ServiceIndex(service.Name);
        }
    }

    /// <summary>The service's row index: configuration order at start, then the order services are added by
    /// reloads; never reused for another name while apphbd runs.</summary>
    public uint ServiceIndex(string name)
    {
        lock (_lock)
        {
            if (!_serviceIndexes.TryGetValue(name, out var index))
            {
                index = (uint)_serviceIndexes.Count + 1;
                _serviceIndexes[name] = index;
            }

            return index;
        }
    }

    /// <summary>The store requests read: rebuilt when older than <see cref="Freshness"/>.</summary>
    public ObjectStore Current()
    {
        lock (_lock)
        {
            if (_builtAt is { } builtAt && _time.GetElapsedTime(builtAt) < Freshness)
            {
                return _store;
            }
        }

        var document = _status();
        var store = Build(document);
        lock (_lock)
        {
            _store = store;
            _builtAt = _time.GetTimestamp();
            return store;
        }
    }

    internal ObjectStore Build(StatusDocument document)
    {
        var b = new ObjectStoreBuilder();
        var d = document.Daemon;
        b.AddScalar(ApphbMib.Daemon.Version, ApphbMib.Display(d.Version));
        b.AddScalar(ApphbMib.Daemon.Pid, new Gauge32((uint)d.Pid));
        b.AddScalar(ApphbMib.Daemon.Uptime, TimeTicks.From(TimeSpan.FromSeconds(d.UptimeSeconds)));
        b.AddScalar(ApphbMib.Daemon.MemoryLocked, ApphbMib.Truth(d.MemoryLocked));
        b.AddScalar(ApphbMib.Daemon.Clients, new Gauge32((uint)document.Clients.Count));
        b.AddScalar(ApphbMib.Daemon.Services, new Gauge32((uint)document.Services.Count));
        b.AddScalar(ApphbMib.Daemon.LoopLateness, new Gauge32(Clamp(d.LoopLatenessP99Ms * 1000)));
        b.AddScalar(ApphbMib.Daemon.ClientsHung, new Gauge32((uint)document.Clients.Count(c => c.State == "hung")));
        b.AddScalar(ApphbMib.Daemon.ServicesDown, new Gauge32((uint)document.Services.Count(s => s.Wanted && s.State != "running")));

        var w = document.Watchdog;
        b.AddScalar(ApphbMib.Watchdog.Backend, ApphbMib.Display(w.Backend));
        b.AddScalar(ApphbMib.Watchdog.Device, ApphbMib.Display(w.Device));
        b.AddScalar(ApphbMib.Watchdog.Identity, ApphbMib.Display(w.Identity));
        b.AddScalar(ApphbMib.Watchdog.Timeout, new Gauge32(Clamp(w.TimeoutSeconds)));
        b.AddScalar(ApphbMib.Watchdog.Period, new Gauge32(Clamp(w.PeriodSeconds * 1000)));
        b.AddScalar(ApphbMib.Watchdog.Tickles, new Counter64((ulong)w.Tickles));
        b.AddScalar(ApphbMib.Watchdog.Withheld, new Counter64((ulong)w.Withheld));
        b.AddScalar(ApphbMib.Watchdog.LastTickleAge, new Gauge32(w.LastTickleAgeMs is { } age ? Clamp(age) : uint.MaxValue));
        b.AddScalar(ApphbMib.Watchdog.LastBootByWatchdog, ApphbMib.Truth(w.LastBootByWatchdog));

        if (document.Cluster is { } c)
        {
            b.AddScalar(ApphbMib.Cluster.Node, ApphbMib.Display(c.Node));
            b.AddScalar(ApphbMib.Cluster.Peer, ApphbMib.Display(c.Peer));
            b.AddScalar(ApphbMib.Cluster.Role, ApphbMib.Enumeration(ApphbMib.Cluster.Roles, c.Role));
            b.AddScalar(ApphbMib.Cluster.PeerRole, c.PeerRole is { } peerRole
                ? ApphbMib.Enumeration(ApphbMib.Cluster.Roles, peerRole)
                : new Integer32(ApphbMib.Cluster.Roles.Count + 1));
            b.AddScalar(ApphbMib.Cluster.Generation, ApphbMib.Display(c.Generation));
            b.AddScalar(ApphbMib.Cluster.PeerGeneration, ApphbMib.Display(c.PeerGeneration));
            b.AddScalar(ApphbMib.Cluster.SplitBrain, ApphbMib.Truth(c.SplitBrain));
            b.AddScalar(ApphbMib.Cluster.GroupRunning, ApphbMib.Truth(c.GroupRunning));
            b.AddScalar(ApphbMib.Cluster.DedicatedLinkUp, ApphbMib.Truth(c.Links.Any(l => l.Kind == "dedicated" && l.State is "up" or "late")));
            b.AddScalar(ApphbMib.Cluster.LanLinkUp, ApphbMib.Truth(c.Links.Any(l => l.Kind == "lan" && l.State is "up" or "late")));
            b.AddScalar(ApphbMib.Cluster.Takeovers, new Counter32(unchecked((uint)c.Takeovers)));
            b.AddScalar(ApphbMib.Cluster.DatagramsRefused, new Counter64((ulong)c.DatagramsRefused));
            b.AddScalar(ApphbMib.Cluster.LastFence, ApphbMib.Display(LastFence(c.LastFence)));
        }

        if (document.Replication is { } r)
        {
            b.AddScalar(ApphbMib.Replication.Path, ApphbMib.Display(r.Path));
            b.AddScalar(ApphbMib.Replication.Side, ApphbMib.Enumeration(ApphbMib.Replication.Sides, r.Side));
            b.AddScalar(ApphbMib.Replication.LagRecords, new Gauge32((uint)Math.Min(uint.MaxValue, r.LagRecords ?? 0)));
            b.AddScalar(ApphbMib.Replication.LagMilliseconds, new Gauge32((uint)Math.Min(uint.MaxValue, (r.LagSeconds ?? 0) * 1000)));
            b.AddScalar(ApphbMib.Replication.Resyncing, ApphbMib.Truth(r.Resyncing));
            b.AddScalar(ApphbMib.Replication.Resyncs, new Counter32(unchecked((uint)r.Resyncs)));
            b.AddScalar(ApphbMib.Replication.Connections, new Counter32(unchecked((uint)r.Connections)));
            b.AddScalar(ApphbMib.Replication.Verifies, new Counter32(unchecked((uint)(r.LastVerify?.Verifies ?? 0))));
            b.AddScalar(ApphbMib.Replication.VerifyDifferences, new Gauge32((uint)(r.LastVerify?.Differences ?? 0)));
            b.AddScalar(ApphbMib.Replication.ResyncPercent, new Gauge32(r.ResyncTotalBytes is > 0 and var total
                ? (uint)Math.Min(100, 100 * (r.ResyncSentBytes ?? 0) / total)
                : 100));
            b.AddScalar(ApphbMib.Replication.LagKiB, new Gauge32((uint)Math.Min(uint.MaxValue, (r.LagBytes ?? 0) / 1024)));
        }

        // The tables read the document's own records when a request reaches a cell: nothing per cell is built here.
        b.AddTable(TableObject.Create(ApphbMib.Service.Entry, ServiceColumns,
            document.Services.Select(s => (ServiceIndex(s.Name), s))));
        // Registration numbers start at 1 and count up; one past 2^32 registrations is not a row SNMP can index.
        b.AddTable(TableObject.Create(ApphbMib.Client.Entry, ClientColumns,
            document.Clients.Where(c => c.Id is > 0 and <= uint.MaxValue).Select(c => ((uint)c.Id, c))));
        return b.Build();
    }

    /// <summary>apphbClusterLastFence's text, also carried by the fence notifications.</summary>
    public static string LastFence(ClusterFenceStatus? fence) =>
        fence is null ? string.Empty : $"{fence.At:yyyy-MM-ddTHH:mm:ssZ} {fence.Method} {(fence.Confirmed ? "confirmed" : "failed")}: {fence.Detail}";

    private static uint Column(ObjectIdentifier column) => column.SubIdentifiers[^1];

    private static readonly (uint, Func<ServiceStatus, ISnmpData>)[] ServiceColumns =
    [
        (Column(ApphbMib.Service.Name), s => ApphbMib.Display(s.Name)),
        (Column(ApphbMib.Service.State), s => ApphbMib.Enumeration(ApphbMib.Service.States, s.State)),
        (Column(ApphbMib.Service.Wanted), s => ApphbMib.Truth(s.Wanted)),
        (Column(ApphbMib.Service.Pid), s => new Gauge32((uint)(s.Pid ?? 0))),
        (Column(ApphbMib.Service.Critical), s => ApphbMib.Truth(s.Critical)),
        (Column(ApphbMib.Service.Restarts), s => new Counter32(unchecked((uint)s.Restarts))),
        (Column(ApphbMib.Service.LastExit), s => ApphbMib.Display(s.LastExit)),
        (Column(ApphbMib.Service.StateAge), s => new Gauge32(Clamp(s.StateAgeSeconds))),
        (Column(ApphbMib.Service.ChecksFailing), s => new Gauge32((uint)s.Checks.Count(c => c.Passing == false))),
    ];

    private static readonly (uint, Func<ClientStatus, ISnmpData>)[] ClientColumns =
    [
        (Column(ApphbMib.Client.Name), c => ApphbMib.Display(c.Name)),
        (Column(ApphbMib.Client.Instance), c => ApphbMib.Display(c.Instance)),
        (Column(ApphbMib.Client.Pid), c => new Gauge32((uint)c.Pid)),
        (Column(ApphbMib.Client.State), c => ApphbMib.Enumeration(ApphbMib.Client.States, c.State)),
        (Column(ApphbMib.Client.Interval), c => new Gauge32(c.IntervalMs)),
        (Column(ApphbMib.Client.WarnTime), c => new Gauge32(c.WarnMs)),
        (Column(ApphbMib.Client.LastBeatAge), c => new Gauge32(Clamp(c.LastBeatAgeMs))),
        (Column(ApphbMib.Client.Beats), c => new Counter64((ulong)c.Beats)),
    ];

    private static uint Clamp(double value) => double.IsNaN(value) ? 0 : (uint)Math.Clamp(Math.Round(value), 0, uint.MaxValue);
}
