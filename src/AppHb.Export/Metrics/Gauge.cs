namespace AppHb.Export.Metrics;

/// <summary>A value that goes up and down.</summary>
public sealed class Gauge : Collector<Gauge.Child>
{
    internal Gauge(string name, string help, IReadOnlyList<string> labelNames)
        : base(name, help, labelNames)
    {
    }

    public override MetricType Type => MetricType.Gauge;

    public void Set(double value) => Unlabelled.Set(value);

    public double Value => Unlabelled.Value;

    protected override Child CreateChild() => new();

    public sealed class Child
    {
        private long _bits;

        public double Value => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _bits));

        public void Set(double value) => Interlocked.Exchange(ref _bits, BitConverter.DoubleToInt64Bits(value));
    }
}
