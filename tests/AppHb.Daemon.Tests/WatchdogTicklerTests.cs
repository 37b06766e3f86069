using System.Diagnostics;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Linux.Watchdog;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Daemon.Tests;

/// <summary>A watchdog that records what it was asked to do, and can refuse a tickle.</summary>
internal sealed class RecordingWatchdogDevice : WatchdogDevice
{
    private int _keepalives;
    private int _disarms;

    public override string Backend => "recording";

    public override TimeSpan Timeout => TimeSpan.FromSeconds(10);

    public int Keepalives => Volatile.Read(ref _keepalives);

    public int Disarms => Volatile.Read(ref _disarms);

    public bool Refuse { get; set; }

    public override void Keepalive()
    {
        if (Refuse)
        {
            throw new IOException("WDIOC_KEEPALIVE: Input/output error (errno 5)");
        }

        Interlocked.Increment(ref _keepalives);
    }

    public override void Disarm() => Interlocked.Increment(ref _disarms);
}

/// <summary>The feed decision under a fake clock, tick by tick.</summary>
public class WatchdogTickleGateTests
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(1);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly RecordingWatchdogDevice _device = new();
    private readonly DaemonHealth _health;
    private readonly WatchdogTickleGate _gate;

    public WatchdogTickleGateTests()
    {
        _health = new DaemonHealth(_clock);
        _gate = new WatchdogTickleGate(_device, _health, Period, _clock, NullLogger.Instance);
    }

    private void BothAlive()
    {
        _health.Loop.Stamp();
        _health.ThreadPool.Stamp();
    }

    [Fact]
    public void Feeds_while_both_loops_proved_alive_within_the_period_and_withholds_when_either_is_stale()
    {
        BothAlive();
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());
        _clock.Advance(Period);
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(TickleOutcome.Withheld, _gate.OnTick());

        // The deadline loop is back but the thread pool (every socket) is not: still withheld.
        _health.Loop.Stamp();
        Assert.Equal(TickleOutcome.Withheld, _gate.OnTick());
        _health.ThreadPool.Stamp();
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());

        Assert.Equal((3, 3L, 2L), (_device.Keepalives, _gate.Tickles, _gate.Withheld));
        Assert.Equal(TimeSpan.Zero, _gate.LastTickleAge);
        _clock.Advance(TimeSpan.FromMilliseconds(250));
        Assert.Equal(TimeSpan.FromMilliseconds(250), _gate.LastTickleAge);
    }

    [Fact]
    public void Stop_feeding_withholds_for_good_even_while_the_daemon_is_alive()
    {
        BothAlive();
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());
        _gate.StopFeeding("critical service failed");
        for (var i = 0; i < 5; i++)
        {
            _clock.Advance(Period / 2);
            BothAlive();
            Assert.Equal(TickleOutcome.Withheld, _gate.OnTick());
        }

        Assert.Equal(1, _device.Keepalives);
        Assert.True(_gate.FeedingStopped);
    }

    [Fact]
    public void A_refused_tickle_is_a_failure_not_a_feed()
    {
        BothAlive();
        _device.Refuse = true;
        Assert.Equal(TickleOutcome.Failed, _gate.OnTick());
        Assert.Equal((0L, 0L), (_gate.Tickles, _gate.Withheld));
        Assert.Null(_gate.LastTickleAge);
        _device.Refuse = false;
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());
    }

    [Fact]
    public void A_thread_pool_probe_stamps_only_when_the_pool_runs_it()
    {
        _clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(5), _health.ThreadPool.Age);
        _health.ProbeThreadPool();
        var watch = Stopwatch.StartNew();
        while (_health.ThreadPool.Age != TimeSpan.Zero)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the thread pool never ran the probe");
            Thread.Yield();
        }

        Assert.Equal(TimeSpan.FromSeconds(5), _health.Loop.Age);
    }

    [Fact]
    public void A_client_loop_that_stops_running_its_probes_withholds_feeding_until_it_runs_them_again()
    {
        var posted = new Queue<Action>();
        _health.WatchClientLoop(posted.Enqueue);
        BothAlive();
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());

        // The loop is stuck: probes are posted (one at a time) but never run.
        _clock.Advance(Period / 2);
        _health.ProbeClientLoop();
        _health.ProbeClientLoop();
        Assert.Single(posted);
        _clock.Advance(Period);
        BothAlive();
        Assert.Equal(TickleOutcome.Withheld, _gate.OnTick());

        // It turns again: the probe runs, feeding resumes, and the next probe can be posted.
        posted.Dequeue()();
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());
        _health.ProbeClientLoop();
        Assert.Single(posted);

        // Stopped on purpose (apphbd is stopping): its age no longer counts.
        _health.UnwatchClientLoop();
        _clock.Advance(Period * 3);
        BothAlive();
        Assert.Equal(TickleOutcome.Fed, _gate.OnTick());
    }
}

/// <summary>The real tickle thread, once: it feeds a live daemon, and stops as the gate says.</summary>
public class WatchdogTicklerTests
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static ApphbdOptions Options() => ConfigurationLoader.Defaults() with
    {
        Watchdog = new WatchdogOptions(new WatchdogSettings(WatchdogBackend.None, "/dev/null", TimeSpan.FromSeconds(1)), Period),
        Realtime = new RealtimeOptions(false, false, AppHb.Linux.Realtime.RealtimePolicy.Fifo, 50),
    };

    /// <summary>Plays the event loop: stamps both proofs of life every few milliseconds until disposed.</summary>
    private sealed class LiveDaemon : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public LiveDaemon(DaemonHealth health) => _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                health.Loop.Stamp();
                health.ThreadPool.Stamp();
                await Task.Delay(2, CancellationToken.None);
            }
        });

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            _stop.Dispose();
        }
    }

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < Bound, $"{what} within {Bound.TotalSeconds} s");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task The_thread_feeds_a_live_daemon_and_an_orderly_stop_disarms()
    {
        var health = new DaemonHealth(TimeProvider.System);
        var device = new RecordingWatchdogDevice();
        using var tickler = new WatchdogTickler(Options(), health, TimeProvider.System, NullLogger<WatchdogTickler>.Instance, _ => device);
        await using (new LiveDaemon(health))
        {
            await tickler.StartAsync(TestContext.Current.CancellationToken);
            await UntilAsync(() => device.Keepalives >= 3, "three tickles");
        }

        await tickler.StopAsync(TestContext.Current.CancellationToken);
        Assert.Equal(1, device.Disarms);
        Assert.Equal(device.Keepalives, tickler.Tickles);
    }

    [Fact]
    public async Task After_stop_feeding_the_thread_never_feeds_and_an_orderly_stop_does_not_disarm()
    {
        var health = new DaemonHealth(TimeProvider.System);
        var device = new RecordingWatchdogDevice();
        using var tickler = new WatchdogTickler(Options(), health, TimeProvider.System, NullLogger<WatchdogTickler>.Instance, _ => device);
        await using (new LiveDaemon(health))
        {
            await tickler.StartAsync(TestContext.Current.CancellationToken);
            await UntilAsync(() => device.Keepalives >= 1, "a first tickle");
            tickler.StopFeeding("critical service failed");
            // A tick already past its decision may still feed once; every tick after the first withheld one may not.
            await UntilAsync(() => tickler.Withheld >= 1, "a withheld tickle");
            var fed = device.Keepalives;
            var withheld = tickler.Withheld;
            await UntilAsync(() => tickler.Withheld >= withheld + 3, "three more ticks");
            Assert.Equal(fed, device.Keepalives);
        }

        await tickler.StopAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, device.Disarms);
    }
}
