namespace AppHb.Benchmarks;

/// <summary>The one percentile every benchmark reports.</summary>
internal static class Percentiles
{
    /// <summary>Nearest rank over samples sorted ascending; NaN when there are none.</summary>
    public static double NearestRank(IReadOnlyList<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
}
