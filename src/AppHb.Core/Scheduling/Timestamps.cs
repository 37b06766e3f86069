namespace AppHb.Core.Scheduling;

/// <summary>Converts between <see cref="TimeSpan"/> and a <see cref="TimeProvider"/>'s timestamp ticks, whose
/// frequency differs between the system clock (ns on Linux) and fake clocks.</summary>
public readonly struct Timestamps
{
    private readonly double _ticksPerSecond;

    public Timestamps(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _ticksPerSecond = time.TimestampFrequency;
    }

    public long ToTicks(TimeSpan span) => (long)Math.Round(span.TotalSeconds * _ticksPerSecond);

    public TimeSpan ToTimeSpan(long ticks) => TimeSpan.FromSeconds(ticks / _ticksPerSecond);
}
