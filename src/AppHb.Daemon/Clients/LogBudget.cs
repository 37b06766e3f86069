namespace AppHb.Daemon.Clients;

/// <summary>At most <paramref name="perWindow"/> log lines of one kind per <paramref name="window"/>; what is held back
/// is counted and said with the next line that goes out. What clients do must not be able to flood the journal (or
/// spend the daemon's time on it): a fuzzer's 100,000 malformed frames make a few lines, not 100,000.</summary>
internal sealed class LogBudget(TimeProvider time, int perWindow, TimeSpan window)
{
    private readonly Lock _gate = new();
    private long _windowStart = long.MinValue;
    private int _used;
    private long _suppressed;

    /// <summary>Whether a line may go out now; <paramref name="suppressed"/> is how many were held back before it.</summary>
    public bool TryTake(out long suppressed)
    {
        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (_windowStart == long.MinValue || time.GetElapsedTime(_windowStart, now) >= window)
            {
                _windowStart = now;
                _used = 0;
            }

            if (_used < perWindow)
            {
                _used++;
                suppressed = _suppressed;
                _suppressed = 0;
                return true;
            }

            _suppressed++;
            suppressed = 0;
            return false;
        }
    }
}
