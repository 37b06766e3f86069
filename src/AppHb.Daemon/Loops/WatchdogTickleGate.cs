using AppHb.Linux.Watchdog;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Loops;

/// <summary>What one tick of the tickle loop did.</summary>
internal enum TickleOutcome
{
    /// <summary>The daemon proved alive: the watchdog was fed.</summary>
    Fed,
    /// <summary>The deadline loop, the thread pool or the client loop is stale (or feeding was stopped on purpose): not fed.</summary>
    Withheld,
    /// <summary>The daemon proved alive but the device refused the tickle.</summary>
    Failed,
}

/// <summary>The watchdog feed decision, once per period, in the shape of Kestrel's <c>Heartbeat.OnHeartbeat</c>: the
/// loop that calls <see cref="OnTick"/> owns the timing, this owns the decision. Feed only while the daemon's deadline
/// loop, thread pool and client loop proved alive within the last period, and never again once <see cref="StopFeeding"/> was called
/// (the reboot escalation). Logs each change between feeding and withholding once, not every period.</summary>
internal sealed class WatchdogTickleGate(WatchdogDevice device, DaemonHealth health, TimeSpan period, TimeProvider time, ILogger logger)
{
    private volatile string? _stopFeedingReason;
    private long _tickles;
    private long _withheld;
    private long _lastTickle = -1;
    private bool _withholding;

    public WatchdogDevice Device => device;

    public long Tickles => Interlocked.Read(ref _tickles);

    public long Withheld => Interlocked.Read(ref _withheld);

    public TimeSpan? LastTickleAge => Interlocked.Read(ref _lastTickle) is var last and >= 0 ? time.GetElapsedTime(last) : null;

    /// <summary>Feeding was stopped on purpose; an orderly stop must then not disarm the hardware either.</summary>
    public bool FeedingStopped => _stopFeedingReason is not null;

    /// <summary>Last resort: never feed again, so the hardware resets the node.</summary>
    public void StopFeeding(string reason) => _stopFeedingReason = reason;

    /// <summary>Called from the tickle thread only, once per period.</summary>
    public TickleOutcome OnTick()
    {
        var age = health.Age;
        if (age > period || _stopFeedingReason is not null)
        {
            Interlocked.Increment(ref _withheld);
            if (!_withholding)
            {
                Log.TickleWithheld(logger, age.TotalMilliseconds, period.TotalMilliseconds, device.Timeout.TotalSeconds);
                _withholding = true;
            }

            return TickleOutcome.Withheld;
        }

        try
        {
            device.Keepalive();
        }
        catch (IOException e)
        {
            Log.TickleFailed(logger, e);
            return TickleOutcome.Failed;
        }

        Interlocked.Increment(ref _tickles);
        Interlocked.Exchange(ref _lastTickle, time.GetTimestamp());
        if (_withholding)
        {
            Log.TickleResumed(logger, Withheld);
            _withholding = false;
        }

        return TickleOutcome.Fed;
    }
}
