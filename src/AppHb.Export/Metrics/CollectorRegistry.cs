namespace AppHb.Export.Metrics;

/// <summary>The metric families of one process, kept sorted by name, with callbacks that refresh values from their
/// sources just before each collection (prometheus-net's CollectorRegistry and AddBeforeCollectCallback).</summary>
public sealed class CollectorRegistry
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, Collector> _collectors = new(StringComparer.Ordinal);
    private readonly List<Action> _beforeCollect = [];

    public Counter CreateCounter(string name, string help, params string[] labelNames) => Add(new Counter(name, help, labelNames));

    public Gauge CreateGauge(string name, string help, params string[] labelNames) => Add(new Gauge(name, help, labelNames));

    public Histogram CreateHistogram(string name, string help, IReadOnlyList<double> buckets, params string[] labelNames) =>
        Add(new Histogram(name, help, labelNames, buckets));

    /// <summary>Runs before every collection, in registration order.</summary>
    public void AddBeforeCollectCallback(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        lock (_gate)
        {
            _beforeCollect.Add(callback);
        }
    }

    /// <summary>Refreshes, then returns the families sorted by name.</summary>
    public IReadOnlyList<Collector> Collect()
    {
        Action[] callbacks;
        lock (_gate)
        {
            callbacks = [.. _beforeCollect];
        }

        foreach (var callback in callbacks)
        {
            callback();
        }

        lock (_gate)
        {
            return [.. _collectors.Values];
        }
    }

    private T Add<T>(T collector) where T : Collector
    {
        lock (_gate)
        {
            var family = FamilyName(collector);
            if (_collectors.Keys.Any(existing => existing == collector.Name || FamilyName(_collectors[existing]) == family))
            {
                throw new InvalidOperationException($"metric {collector.Name} is already registered");
            }

            _collectors.Add(collector.Name, collector);
            return collector;
        }
    }

    internal static string FamilyName(Collector collector) =>
        collector.Type == MetricType.Counter ? collector.Name[..^"_total".Length] : collector.Name;
}
