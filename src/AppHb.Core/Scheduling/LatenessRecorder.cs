namespace AppHb.Core.Scheduling;

/// <summary>Keeps the most recent lateness samples of a loop (how long after its target it woke) and summarises
/// them. A fixed ring: recording never allocates, so the tickle and deadline loops can call it every time.</summary>
public sealed class LatenessRecorder
{
    private readonly Lock _gate = new();
    private readonly double[] _samplesMs;
    private long _count;
    private double _maxMs;

    public LatenessRecorder(int capacity = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _samplesMs = new double[capacity];
    }

    public void Record(TimeSpan lateness)
    {
        var ms = Math.Max(0, lateness.TotalMilliseconds);
        lock (_gate)
        {
            _samplesMs[_count % _samplesMs.Length] = ms;
            _count++;
            _maxMs = Math.Max(_maxMs, ms);
        }
    }

    /// <summary>Percentiles over the retained window; the maximum is since start.</summary>
    public LatenessSummary Summarize()
    {
        double[] copy;
        long count;
        double max;
        lock (_gate)
        {
            count = _count;
            max = _maxMs;
            copy = _samplesMs[..(int)Math.Min(count, _samplesMs.Length)];
        }

        if (copy.Length == 0)
        {
            return new LatenessSummary(0, 0, 0, 0);
        }

        Array.Sort(copy);
        return new LatenessSummary(count, Percentile(copy, 0.50), Percentile(copy, 0.99), max);
    }

    private static double Percentile(double[] sorted, double q)
    {
        var index = (int)Math.Ceiling(q * sorted.Length) - 1;
        return sorted[Math.Clamp(index, 0, sorted.Length - 1)];
    }
}

/// <summary>A summary of loop lateness in milliseconds.</summary>
public readonly record struct LatenessSummary(long Count, double P50Ms, double P99Ms, double MaxMs);
