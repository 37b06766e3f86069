using AppHb.Core.Heartbeats;
using AppHb.Core.Scheduling;
using AppHb.Daemon.Configuration;
using AppHb.Linux.Timing;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Loops;

/// <summary>The daemon's event loop: one dedicated (realtime when permitted) thread that sleeps exactly until the
/// earliest deadline of its sources (the heartbeat registry, the supervisor; the peer's deadtime next), acts on what
/// expired, and proves its own liveness to the watchdog tickle loop, both directly and by getting a work item through
/// the thread pool (which serves every socket). No source keeps a timer of its own.</summary>
internal sealed class DeadlineLoop : DedicatedThreadService
{
    private readonly IReadOnlyList<IDeadlineSource> _sources;
    private readonly DaemonHealth _health;
    private readonly TimeProvider _time;
    private readonly RealtimeOptions _realtime;
    private readonly TimeSpan _maxIdle;
    private readonly ILogger<DeadlineLoop> _logger;
    private readonly PreciseWaiter _waiter = new();

    public DeadlineLoop(IReadOnlyList<IDeadlineSource> sources, DaemonHealth health, TimeProvider time, ApphbdOptions options, ILogger<DeadlineLoop> logger)
    {
        _sources = sources;
        _health = health;
        _time = time;
        _realtime = options.Realtime;
        // Stamp liveness several times per tickle period so one slow pass never withholds a tickle.
        _maxIdle = options.Watchdog.Period / 4;
        _logger = logger;
    }

    protected override string ThreadName => "apphb-deadlines";

    protected override void OnStarting()
    {
        foreach (var source in _sources)
        {
            source.EarlierDeadlineScheduled = _waiter.Wake;
        }
    }

    protected override void Wake() => _waiter.Wake();

    protected override void DisposeResources() => _waiter.Dispose();

    protected override void Run()
    {
        _health.LoopScheduling = RealtimeThreads.Apply(_realtime, _logger, "deadline loop");
        var timestamps = new Timestamps(_time);
        var maxIdleTicks = timestamps.ToTicks(_maxIdle);
        try
        {
            while (!IsStopping)
            {
                var next = long.MaxValue;
                foreach (var source in _sources)
                {
                    next = Math.Min(next, source.ExpireDue());
                }

                _health.Loop.Stamp();
                _health.ProbeThreadPool();
                _health.ProbeClientLoop();
                var now = _time.GetTimestamp();
                var forDeadline = next - now <= maxIdleTicks;
                var wakeAt = forDeadline ? next : now + maxIdleTicks;
                var woken = _waiter.Wait(timestamps.ToTimeSpan(Math.Max(0, wakeAt - now)));
                if (!woken && forDeadline)
                {
                    _health.LoopLateness.Record(_time.GetElapsedTime(wakeAt));
                }
            }
        }
        catch (Exception e)
        {
            // Nothing may hide a broken loop: the tickler sees the stale stamp and lets the watchdog reset the node.
            Log.DeadlineLoopFailed(_logger, e);
        }
    }
}
