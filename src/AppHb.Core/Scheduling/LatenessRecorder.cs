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

    /// <summary>Percentiles over the retained window; the maximum is since start. Each scrape and status request asks,
    /// so the percentiles are selected (linear time) in a pooled copy, not sorted in a fresh one.</summary>
    public LatenessSummary Summarize()
    {
        var copy = System.Buffers.ArrayPool<double>.Shared.Rent(_samplesMs.Length);
        try
        {
            long count;
            double max;
            int length;
            lock (_gate)
            {
                count = _count;
                max = _maxMs;
                length = (int)Math.Min(count, _samplesMs.Length);
                _samplesMs.AsSpan(0, length).CopyTo(copy);
            }

            if (length == 0)
            {
                return new LatenessSummary(0, 0, 0, 0);
            }

            var window = copy.AsSpan(0, length);
            return new LatenessSummary(count, Select(window, Rank(length, 0.50)), Select(window, Rank(length, 0.99)), max);
        }
        finally
        {
            System.Buffers.ArrayPool<double>.Shared.Return(copy);
        }
    }

    /// <summary>The nearest-rank position of quantile <paramref name="q"/> among <paramref name="length"/> samples.</summary>
    private static int Rank(int length, double q) => Math.Clamp((int)Math.Ceiling(q * length) - 1, 0, length - 1);

    /// <summary>The value that would be at position <paramref name="k"/> if <paramref name="values"/> were sorted
    /// (Hoare's selection; reorders the span).</summary>
    internal static double Select(Span<double> values, int k)
    {
        var low = 0;
        var high = values.Length - 1;
        while (low < high)
        {
            var pivot = values[low + ((high - low) / 2)];
            var i = low;
            var j = high;
            while (i <= j)
            {
                while (values[i] < pivot)
                {
                    i++;
                }

                while (values[j] > pivot)
                {
                    j--;
                }

                if (i <= j)
                {
                    (values[i], values[j]) = (values[j], values[i]);
                    i++;
                    j--;
                }
            }

            if (k <= j)
            {
                high = j;
            }
            else if (k >= i)
            {
                low = i;
            }
            else
            {
                return values[k];
            }
        }

        return values[k];
    }
}

/// <summary>A summary of loop lateness in milliseconds.</summary>
public readonly record struct LatenessSummary(long Count, double P50Ms, double P99Ms, double MaxMs);
