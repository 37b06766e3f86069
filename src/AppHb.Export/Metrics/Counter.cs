namespace AppHb.Export.Metrics;

/// <summary>A value that only goes up (or is set from a source that only goes up).</summary>
public sealed class Counter : Collector<Counter.Child>
{
    internal Counter(string name, string help, IReadOnlyList<string> labelNames)
        : base(name, help, labelNames)
    {
        if (!name.EndsWith("_total", StringComparison.Ordinal))
        {
            throw new ArgumentException($"counter {name} must end in _total (Prometheus naming)", nameof(name));
        }
    }

    public override MetricType Type => MetricType.Counter;

    public void Inc(double increment = 1) => Unlabelled.Inc(increment);

    public double Value => Unlabelled.Value;

    protected override Child CreateChild() => new();

    public sealed class Child
    {
        private long _bits;

        public double Value => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _bits));

        public void Inc(double increment = 1)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(increment);
            long seen, next;
            do
            {
                seen = Interlocked.Read(ref _bits);
                next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(seen) + increment);
            }
            while (Interlocked.CompareExchange(ref _bits, next, seen) != seen);
        }

        /// <summary>Sets the value from a counter kept elsewhere (it must never decrease).</summary>
        public void IncTo(double value)
        {
            long seen;
            do
            {
                seen = Interlocked.Read(ref _bits);
                if (BitConverter.Int64BitsToDouble(seen) >= value)
                {
                    return;
                }
            }
            while (Interlocked.CompareExchange(ref _bits, BitConverter.DoubleToInt64Bits(value), seen) != seen);
        }
    }
}
