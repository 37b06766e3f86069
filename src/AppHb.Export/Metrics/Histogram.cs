namespace AppHb.Export.Metrics;

/// <summary>Observations counted into cumulative buckets, with their sum and count.</summary>
public sealed class Histogram : Collector<Histogram.Child>
{
    private readonly double[] _buckets;

    internal Histogram(string name, string help, IReadOnlyList<string> labelNames, IReadOnlyList<double> buckets)
        : base(name, help, labelNames)
    {
        if (buckets.Count == 0 || buckets.Zip(buckets.Skip(1)).Any(p => p.First >= p.Second))
        {
            throw new ArgumentException($"histogram {name} needs strictly increasing bucket bounds", nameof(buckets));
        }

        _buckets = [.. buckets.Where(b => !double.IsPositiveInfinity(b))];
        BoundsUtf8 = _buckets.Select(b => System.Text.Encoding.UTF8.GetBytes(TextSerializer.Format(b))).ToArray();
    }

    public override MetricType Type => MetricType.Histogram;

    /// <summary>The bounds as the exposition writes them in le="…", formatted once.</summary>
    internal IReadOnlyList<byte[]> BoundsUtf8 { get; }

    public void Observe(double value) => Unlabelled.Observe(value);

    /// <summary>Exponential bucket bounds: start, start*factor, ... (count of them).</summary>
    public static double[] ExponentialBuckets(double start, double factor, int count) =>
        Enumerable.Range(0, count).Select(i => start * Math.Pow(factor, i)).ToArray();

    protected override Child CreateChild() => new(this);

    public sealed class Child
    {
        private readonly Histogram _owner;
        private readonly long[] _counts;
        private readonly Lock _gate = new();
        private double _sum;
        private long _count;

        internal Child(Histogram owner)
        {
            _owner = owner;
            _counts = new long[owner._buckets.Length];
        }

        public void Observe(double value)
        {
            lock (_gate)
            {
                for (var i = 0; i < _counts.Length; i++)
                {
                    if (value <= _owner._buckets[i])
                    {
                        _counts[i]++;
                        break;
                    }
                }

                _sum += value;
                _count++;
            }
        }

        /// <summary>Cumulative counts per bucket (the last is +Inf), the sum and the count, consistent together.</summary>
        internal (long[] Cumulative, double Sum, long Count) Snapshot()
        {
            lock (_gate)
            {
                var cumulative = new long[_counts.Length + 1];
                long running = 0;
                for (var i = 0; i < _counts.Length; i++)
                {
                    running += _counts[i];
                    cumulative[i] = running;
                }

                cumulative[^1] = _count;
                return (cumulative, _sum, _count);
            }
        }
    }
}
