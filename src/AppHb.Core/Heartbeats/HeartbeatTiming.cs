namespace AppHb.Core.Heartbeats;

/// <summary>How often a client promises to beat. A client is <c>warn</c> after <see cref="Warn"/> without a beat and
/// <c>hung</c> after <see cref="Interval"/> (Linux-HA apphbd's setwarn / setinterval). Warn zero disables warn.</summary>
public readonly record struct HeartbeatTiming
{
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(10);
    public static readonly TimeSpan MaxInterval = TimeSpan.FromDays(1);

    private HeartbeatTiming(TimeSpan interval, TimeSpan warn)
    {
        Interval = interval;
        Warn = warn;
    }

    public TimeSpan Interval { get; }

    public TimeSpan Warn { get; }

    /// <summary>Validates and builds a timing.</summary>
    /// <exception cref="ArgumentException">The message says which value is wrong and what would be valid.</exception>
    public static HeartbeatTiming Create(TimeSpan interval, TimeSpan warn)
    {
        if (interval < MinInterval || interval > MaxInterval)
        {
            throw new ArgumentException(
                $"interval {interval.TotalMilliseconds:0} ms is out of range; it must be between {MinInterval.TotalMilliseconds:0} ms and {MaxInterval.TotalMilliseconds:0} ms",
                nameof(interval));
        }

        if (warn < TimeSpan.Zero || (warn != TimeSpan.Zero && warn >= interval))
        {
            throw new ArgumentException(
                $"warn time {warn.TotalMilliseconds:0} ms must be 0 (no warning) or shorter than the interval of {interval.TotalMilliseconds:0} ms",
                nameof(warn));
        }

        return new HeartbeatTiming(interval, warn);
    }

    public static HeartbeatTiming FromMilliseconds(uint intervalMs, uint warnMs) =>
        Create(TimeSpan.FromMilliseconds(intervalMs), TimeSpan.FromMilliseconds(warnMs));
}
