using AppHb.Daemon.Configuration;
using AppHb.Export.Snmp;
using AppHb.Protocol;

namespace AppHb.Daemon.Export;

/// <summary>APPHB-MIB's values, read from the status snapshot. One snapshot serves every request for a second: a walk
/// of 1,000 clients is a thousand GetBulk requests, and they must read one consistent table, cheaply (net-snmp's own
/// table handlers cache the same way).</summary>
internal sealed class StatusMib
{
    /// <summary>How long one snapshot answers requests.</summary>
    public static readonly TimeSpan Freshness = TimeSpan.FromSeconds(1);

    private readonly Func<StatusDocument> _status;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, uint> _serviceIndexes = new(StringComparer.Ordinal);
    private ObjectStore _store = ObjectStore.Empty;
    private long _builtAt;
    private bool _built;

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
            if (_built && _time.GetElapsedTime(_builtAt) < Freshness)
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
            _built = true;
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

        foreach (var column in new[]
        {
            ApphbMib.Service.Name, ApphbMib.Service.State, ApphbMib.Service.Wanted, ApphbMib.Service.Pid, ApphbMib.Service.Critical,
            ApphbMib.Service.Restarts, ApphbMib.Service.LastExit, ApphbMib.Service.StateAge, ApphbMib.Service.ChecksFailing,
            ApphbMib.Client.Name, ApphbMib.Client.Instance, ApphbMib.Client.Pid, ApphbMib.Client.State, ApphbMib.Client.Interval,
            ApphbMib.Client.WarnTime, ApphbMib.Client.LastBeatAge, ApphbMib.Client.Beats,
        })
        {
            b.DeclareColumn(column);
        }

        foreach (var s in document.Services)
        {
            var row = ServiceIndex(s.Name);
            b.AddCell(ApphbMib.Service.Name, row, ApphbMib.Display(s.Name));
            b.AddCell(ApphbMib.Service.State, row, ApphbMib.Enumeration(ApphbMib.Service.States, s.State));
            b.AddCell(ApphbMib.Service.Wanted, row, ApphbMib.Truth(s.Wanted));
            b.AddCell(ApphbMib.Service.Pid, row, new Gauge32((uint)(s.Pid ?? 0)));
            b.AddCell(ApphbMib.Service.Critical, row, ApphbMib.Truth(s.Critical));
            b.AddCell(ApphbMib.Service.Restarts, row, new Counter32(unchecked((uint)s.Restarts)));
            b.AddCell(ApphbMib.Service.LastExit, row, ApphbMib.Display(s.LastExit));
            b.AddCell(ApphbMib.Service.StateAge, row, new Gauge32(Clamp(s.StateAgeSeconds)));
            b.AddCell(ApphbMib.Service.ChecksFailing, row, new Gauge32((uint)s.Checks.Count(c => c.Passing == false)));
        }

        foreach (var c in document.Clients)
        {
            // Registration numbers start at 1 and count up; one past 2^32 registrations is not a row SNMP can index.
            if (c.Id is 0 or > uint.MaxValue)
            {
                continue;
            }

            var row = (uint)c.Id;
            b.AddCell(ApphbMib.Client.Name, row, ApphbMib.Display(c.Name));
            b.AddCell(ApphbMib.Client.Instance, row, ApphbMib.Display(c.Instance));
            b.AddCell(ApphbMib.Client.Pid, row, new Gauge32((uint)c.Pid));
            b.AddCell(ApphbMib.Client.State, row, ApphbMib.Enumeration(ApphbMib.Client.States, c.State));
            b.AddCell(ApphbMib.Client.Interval, row, new Gauge32(c.IntervalMs));
            b.AddCell(ApphbMib.Client.WarnTime, row, new Gauge32(c.WarnMs));
            b.AddCell(ApphbMib.Client.LastBeatAge, row, new Gauge32(Clamp(c.LastBeatAgeMs)));
            b.AddCell(ApphbMib.Client.Beats, row, new Counter64((ulong)c.Beats));
        }

        return b.Build();
    }

    private static uint Clamp(double value) => double.IsNaN(value) ? 0 : (uint)Math.Clamp(Math.Round(value), 0, uint.MaxValue);
}
