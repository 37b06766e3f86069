namespace AppHb.Core.Scheduling;

/// <summary>The event loop stamps this each time it runs; the watchdog tickle loop reads it and feeds the watchdog
/// only if the stamp is recent. A hung or starved event loop therefore stops the tickles, and the box resets.</summary>
public sealed class LoopLiveness
{
    private readonly TimeProvider _time;
    private long _lastAlive;

    public LoopLiveness(TimeProvider time)
    {
        _time = time;
        _lastAlive = time.GetTimestamp();
    }

    public void Stamp() => Volatile.Write(ref _lastAlive, _time.GetTimestamp());

    /// <summary>How long ago the loop last proved alive.</summary>
    public TimeSpan Age => _time.GetElapsedTime(Volatile.Read(ref _lastAlive));
}
