using System.Diagnostics;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Linux.Watchdog;
using Microsoft.Extensions.Logging.Abstractions;

namespace AppHb.Daemon.Tests;

/// <summary>The real tickle thread against the none backend; the test plays the event loop by stamping liveness.</summary>
public class WatchdogTicklerTests
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(40);

    private static ApphbdOptions Options() => ConfigurationLoader.Defaults() with
    {
        Watchdog = new WatchdogOptions(new WatchdogSettings(WatchdogBackend.None, "/dev/null", TimeSpan.FromSeconds(1)), Period),
        Realtime = new RealtimeOptions(false, false, AppHb.Linux.Realtime.RealtimePolicy.Fifo, 50),
    };

    [Fact]
    public async Task Tickles_only_while_the_event_loop_proves_alive_and_resumes_when_it_does_again()
    {
        var health = new DaemonHealth(TimeProvider.System);
        using var tickler = new WatchdogTickler(Options(), health, TimeProvider.System, NullLogger<WatchdogTickler>.Instance);
        using var loop = new CancellationTokenSource();
        var alive = true;
        var stamping = Task.Run(async () =>
        {
            while (!loop.IsCancellationRequested)
            {
                if (Volatile.Read(ref alive))
                {
                    health.Loop.Stamp();
                    health.ThreadPool.Stamp();
                }

                await Task.Delay(5, CancellationToken.None);
            }
        }, TestContext.Current.CancellationToken);

        await tickler.StartAsync(TestContext.Current.CancellationToken);
        await Task.Delay(Period * 8, TestContext.Current.CancellationToken);
        Assert.True(tickler.Tickles >= 4, $"only {tickler.Tickles} tickles while alive");
        Assert.Equal(0, tickler.Withheld);

        Volatile.Write(ref alive, false);
        await Task.Delay(Period * 2, TestContext.Current.CancellationToken);
        var ticklesWhenHung = tickler.Tickles;
        await Task.Delay(Period * 6, TestContext.Current.CancellationToken);
        Assert.Equal(ticklesWhenHung, tickler.Tickles);
        Assert.True(tickler.Withheld >= 4, $"only {tickler.Withheld} tickles withheld while hung");

        Volatile.Write(ref alive, true);
        await WaitUntil(() => tickler.Tickles > ticklesWhenHung);
        await loop.CancelAsync();
        await stamping;
        await tickler.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Stop_feeding_withholds_for_good_and_an_orderly_stop_then_does_not_disarm()
    {
        var health = new DaemonHealth(TimeProvider.System);
        using var tickler = new WatchdogTickler(Options(), health, TimeProvider.System, NullLogger<WatchdogTickler>.Instance);
        await tickler.StartAsync(TestContext.Current.CancellationToken);
        tickler.StopFeeding("critical service failed");
        var before = tickler.Tickles;
        for (var i = 0; i < 6; i++)
        {
            health.Loop.Stamp();
            health.ThreadPool.Stamp();
            await Task.Delay(Period, TestContext.Current.CancellationToken);
        }

        Assert.InRange(tickler.Tickles - before, 0, 1);
        await tickler.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public void A_thread_pool_probe_stamps_only_when_the_pool_runs_it()
    {
        var health = new DaemonHealth(TimeProvider.System);
        Thread.Sleep(30);
        var before = health.ThreadPool.Age;
        health.ProbeThreadPool();
        var watch = Stopwatch.StartNew();
        while (health.ThreadPool.Age >= before && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(1);
        }

        Assert.True(health.ThreadPool.Age < before);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), "condition not met within 5 s");
            await Task.Delay(5);
        }
    }
}
