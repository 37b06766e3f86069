using AppHb.Core.Heartbeats;
using AppHb.Core.Scheduling;
using AppHb.Daemon.Configuration;
using AppHb.Linux.Timing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Loops;

/// <summary>The daemon's event loop: one dedicated (realtime when permitted) thread that sleeps exactly until the
/// registry's next deadline, raises what expired, and proves its own liveness to the watchdog tickle loop, both
/// directly and by getting a work item through the thread pool (which serves every socket).</summary>
internal sealed class DeadlineLoop : IHostedService, IDisposable
{
    private readonly HeartbeatRegistry _registry;
    private readonly DaemonHealth _health;
    private readonly TimeProvider _time;
    private readonly RealtimeOptions _realtime;
    private readonly TimeSpan _maxIdle;
    private readonly ILogger<DeadlineLoop> _logger;
    private readonly PreciseWaiter _waiter = new();
    private int _disposed;
    private Thread? _thread;
    private volatile bool _stopping;

    public DeadlineLoop(HeartbeatRegistry registry, DaemonHealth health, TimeProvider time, ApphbdOptions options, ILogger<DeadlineLoop> logger)
    {
        _registry = registry;
        _health = health;
        _time = time;
        _realtime = options.Realtime;
        // Stamp liveness several times per tickle period so one slow pass never withholds a tickle.
        _maxIdle = options.Watchdog.Period / 4;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registry.EarlierDeadlineScheduled = _waiter.Wake;
        _thread = new Thread(Run) { Name = "apphb-deadlines", IsBackground = true };
        _thread.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        _waiter.Wake();
        _thread?.Join();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        // Idempotent: the container disposes this once as a singleton and once as the hosted service it also is.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Stop the thread before its waiter goes: disposing under a running loop would crash the daemon.
        _stopping = true;
        _waiter.Wake();
        _thread?.Join();
        _waiter.Dispose();
    }

    private void Run()
    {
        _health.LoopScheduling = RealtimeThreads.Apply(_realtime, _logger, "deadline loop");
        var timestamps = new Timestamps(_time);
        var maxIdleTicks = timestamps.ToTicks(_maxIdle);
        try
        {
            while (!_stopping)
            {
                var next = _registry.ExpireDue();
                _health.Loop.Stamp();
                _health.ProbeThreadPool();
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
