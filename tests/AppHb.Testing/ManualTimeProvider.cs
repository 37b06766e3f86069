namespace AppHb.Testing;

/// <summary>A clock that moves only when told (NodaTime's FakeClock, for TimeProvider). Timestamps are in
/// nanoseconds, like the system clock on Linux.</summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private long _nanoseconds = 1_000_000_000;
    private DateTimeOffset _utc = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override long TimestampFrequency => 1_000_000_000;

    public override long GetTimestamp() => Interlocked.Read(ref _nanoseconds);

    public override DateTimeOffset GetUtcNow() => _utc + TimeSpan.FromTicks((GetTimestamp() - 1_000_000_000) / 100);

    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        Interlocked.Add(ref _nanoseconds, by.Ticks * 100);
    }
}
