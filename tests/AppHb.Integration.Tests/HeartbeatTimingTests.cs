using System.Diagnostics;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>Real daemon, real clients, real socket. Stated tolerance: the daemon raises each event at most 50 ms
/// after its deadline by its own clock (late_ms), and a watcher receives it at most 300 ms after the deadline, never
/// before it.</summary>
public class HeartbeatTimingTests
{
    private const double DaemonToleranceMs = 50;
    private const double ObservedToleranceMs = 300;

    [Fact]
    public async Task Silent_client_goes_warn_then_hung_on_time_then_recovers_when_beats_resume()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        await using var client = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "timed",
            Interval = TimeSpan.FromMilliseconds(600),
            WarnTime = TimeSpan.FromMilliseconds(300),
        });
        await client.RegisterAsync(TestContext.Current.CancellationToken);
        // Taken before the beat is sent: the daemon cannot receive it earlier, but on a busy machine BeatAsync may
        // return a few milliseconds after the daemon has (measured after it, a hung came "2 ms early").
        var lastBeat = Stopwatch.GetTimestamp();
        await client.BeatAsync(TestContext.Current.CancellationToken);

        var warn = await watcher.WaitForAsync("warn", "timed", TimeSpan.FromSeconds(5));
        var hung = await watcher.WaitForAsync("hung", "timed", TimeSpan.FromSeconds(5));
        AssertOnTime(warn, lastBeat, 300);
        AssertOnTime(hung, lastBeat, 600);

        await client.BeatAsync(TestContext.Current.CancellationToken);
        var recovered = await watcher.WaitForAsync("recovered", "timed", TimeSpan.FromSeconds(5));
        Assert.Equal("healthy", recovered.Event.Client!.State);

        // Silence again: one more warn and hung, still exactly once each per episode. A second client that goes hung
        // after a whole interval of its own proves that time passed after the second hung without a third.
        var second = await watcher.WaitForAsync(e => e.Kind == "hung" && e.Client?.Name == "timed", TimeSpan.FromSeconds(10), recovered.Event.Sequence);
        await using var clock = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "clock",
            Interval = TimeSpan.FromMilliseconds(700),
            WarnTime = TimeSpan.Zero,
        });
        await clock.RegisterAsync(TestContext.Current.CancellationToken);
        await watcher.WaitForAsync(e => e.Kind == "hung" && e.Client?.Name == "clock", TimeSpan.FromSeconds(10), second.Sequence);
        Assert.Equal(2, watcher.Count("warn", "timed"));
        Assert.Equal(2, watcher.Count("hung", "timed"));
        Assert.Equal(1, watcher.Count("recovered", "timed"));
    }

    [Fact]
    public async Task Steady_beats_raise_nothing_and_set_interval_takes_effect_at_once()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        await using var client = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "steady",
            Interval = TimeSpan.FromMilliseconds(400),
            WarnTime = TimeSpan.FromMilliseconds(200),
            AutoBeatPeriod = TimeSpan.FromMilliseconds(50),
        });
        await client.RegisterAsync(TestContext.Current.CancellationToken);
        // 30 beats at 50 ms span 1.5 s, almost four intervals.
        var control = new AppHbControl(daemon.SocketPath);
        var watch = Stopwatch.StartNew();
        while ((await control.GetStatusAsync(TestContext.Current.CancellationToken)).Clients.Single().Beats < 30)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the client never beat 30 times");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.Equal(0, watcher.Count("warn", "steady") + watcher.Count("hung", "steady"));

        // An interval shorter than the beat period makes it hang even though it keeps beating.
        await client.SetWarnTimeAsync(TimeSpan.Zero, TestContext.Current.CancellationToken);
        await client.SetIntervalAsync(TimeSpan.FromMilliseconds(20), TestContext.Current.CancellationToken);
        await watcher.WaitForAsync("hung", "steady", TimeSpan.FromSeconds(5));
        var status = await new AppHbControl(daemon.SocketPath).GetStatusAsync(TestContext.Current.CancellationToken);
        Assert.Equal(20u, status.Clients.Single().IntervalMs);
    }

    [Fact]
    public async Task Invalid_timing_is_refused_with_the_reason_and_the_connection_stays_usable()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var client = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "bad",
            Interval = TimeSpan.FromSeconds(1),
            WarnTime = TimeSpan.FromSeconds(2),
        });
        var e = await Assert.ThrowsAsync<AppHbException>(() => client.RegisterAsync(TestContext.Current.CancellationToken));
        Assert.Equal(AppHb.Protocol.ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("shorter than the interval", e.Message, StringComparison.Ordinal);
    }

    private static void AssertOnTime((AppHb.Protocol.EventDocument Event, long ArrivedAt) observed, long lastBeat, double deadlineMs)
    {
        Assert.NotNull(observed.Event.LateMs);
        Assert.InRange(observed.Event.LateMs!.Value, 0, DaemonToleranceMs);
        var arrivedAfterBeatMs = Stopwatch.GetElapsedTime(lastBeat, observed.ArrivedAt).TotalMilliseconds;
        Assert.InRange(arrivedAfterBeatMs, deadlineMs - 1, deadlineMs + ObservedToleranceMs);
    }
}

public class HotPathTests
{
    [Fact]
    public async Task A_beat_allocates_nothing_in_the_daemon()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var client = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "hot", Interval = TimeSpan.FromSeconds(30), WarnTime = TimeSpan.Zero });
        await client.RegisterAsync(TestContext.Current.CancellationToken);
        var control = new AppHbControl(daemon.SocketPath);
        for (var i = 0; i < 20_000; i++)
        {
            await client.BeatAsync(TestContext.Current.CancellationToken);
        }

        var before = (await control.GetStatusAsync(TestContext.Current.CancellationToken)).Daemon.AllocatedBytes;
        const int beats = 100_000;
        for (var i = 0; i < beats; i++)
        {
            await client.BeatAsync(TestContext.Current.CancellationToken);
        }

        // Beats are sent without waiting for an answer: the status, on another connection, may overtake the last of
        // them (the native daemon answers fast enough for that). Ask until every beat is counted.
        var status = await control.GetStatusAsync(TestContext.Current.CancellationToken);
        var counting = Stopwatch.StartNew();
        while (status.Clients.Single().Beats < 120_000 && counting.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
            status = await control.GetStatusAsync(TestContext.Current.CancellationToken);
        }

        Assert.Equal(120_000, status.Clients.Single().Beats);
        // Timers, the liveness probe and one status document allocate a little; beats must add nothing. A closure
        // on the frame path once cost ~40 bytes a beat (4 MB here).
        var perBeat = (double)(status.Daemon.AllocatedBytes - before) / beats;
        Assert.True(perBeat < 4, $"{perBeat:0.0} bytes allocated per beat");
    }
}
