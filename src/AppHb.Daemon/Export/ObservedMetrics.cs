using AppHb.Export.Metrics;

namespace AppHb.Daemon.Export;

/// <summary>The metrics recorded as things happen (the rest are read from the status snapshot at scrape time):
/// check durations and failures, watchdog tickle lateness.</summary>
internal sealed class ObservedMetrics
{
    private readonly Histogram _checkDuration;
    private readonly Counter _checkFailures;
    private readonly Histogram _tickleLateness;

    public ObservedMetrics(CollectorRegistry registry)
    {
        _checkDuration = registry.CreateHistogram("apphb_service_check_duration_seconds", "Duration of a service's API check runs.",
            Histogram.ExponentialBuckets(0.0005, 4, 8), "service", "check");
        _checkFailures = registry.CreateCounter("apphb_service_check_failures_total", "Failed runs of a service's API check.", "service", "check");
        _tickleLateness = registry.CreateHistogram("apphb_watchdog_tickle_lateness_seconds", "How late each watchdog tickle was against its schedule.",
            Histogram.ExponentialBuckets(0.00005, 4, 8));
    }

    public void Check(string service, string check, TimeSpan duration, bool passed)
    {
        _checkDuration.WithLabels(service, check).Observe(duration.TotalSeconds);
        if (!passed)
        {
            _checkFailures.WithLabels(service, check).Inc();
        }
    }

    public void Tickle(TimeSpan lateness) => _tickleLateness.Observe(lateness.TotalSeconds);
}
