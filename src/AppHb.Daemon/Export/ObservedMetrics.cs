using AppHb.Export.Metrics;

namespace AppHb.Daemon.Export;

/// <summary>The metrics recorded as things happen (the rest are read from the status snapshot at scrape time):
/// check durations and failures, watchdog tickle lateness, the scrapes themselves.</summary>
internal sealed class ObservedMetrics
{
    private readonly Histogram _checkDuration;
    private readonly Counter _checkFailures;
    private readonly Histogram _tickleLateness;
    private readonly Histogram _scrapeDuration;

    public ObservedMetrics(CollectorRegistry registry)
    {
        _checkDuration = registry.CreateHistogram("apphb_service_check_duration_seconds", "Duration of a service's API check runs.",
            Histogram.ExponentialBuckets(0.0005, 4, 8), "service", "check");
        _checkFailures = registry.CreateCounter("apphb_service_check_failures_total", "Failed runs of a service's API check.", "service", "check");
        _tickleLateness = registry.CreateHistogram("apphb_watchdog_tickle_lateness_seconds", "How late each watchdog tickle was against its schedule.",
            Histogram.ExponentialBuckets(0.00005, 4, 8));
        // Fine around the 5 ms goal: the scraper's own clock adds its machine's scheduling, this one says what
        // apphbd spent.
        _scrapeDuration = registry.CreateHistogram("apphb_metrics_scrape_duration_seconds",
            "Time apphbd took to serve GET /metrics, from the request to the body handed to Kestrel.",
            [0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.1]);
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

    public void Scrape(TimeSpan duration) => _scrapeDuration.Observe(duration.TotalSeconds);
}
