using System.Diagnostics;
using AppHb.Linux.Accounts;
using AppHb.Linux.Gpio;
using AppHb.Linux.Realtime;
using AppHb.Linux.Timing;
using AppHb.Linux.Watchdog;
using AppHb.Testing;

namespace AppHb.Linux.Tests;

/// <summary>Real syscalls against real files. The host's /dev/watchdog is never opened: a real watchdog driver is
/// exercised in the appliance VM (hw/). Here, the refusal paths a misconfigured node would hit.</summary>
public class DeviceTests
{
    [Fact]
    public void Opening_a_file_that_is_not_a_watchdog_is_refused_by_name()
    {
        var e = Assert.Throws<WatchdogUnavailableException>(() => LinuxWatchdogDevice.Open("/dev/null", TimeSpan.FromSeconds(30)));
        Assert.Contains("/dev/null is not a watchdog device", e.Message, StringComparison.Ordinal);
        Assert.Contains("WDIOC_GETSUPPORT", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_watchdog_device_says_no_driver_is_loaded()
    {
        var e = Assert.Throws<WatchdogUnavailableException>(() => LinuxWatchdogDevice.Open("/dev/watchdog-apphb-missing", null));
        Assert.Contains("no watchdog driver is loaded", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_a_gpio_chip_is_refused_by_name()
    {
        var e = Assert.Throws<WatchdogUnavailableException>(() =>
            WatchdogDevice.Create(new WatchdogSettings(WatchdogBackend.Gpio, "/dev/null", TimeSpan.FromSeconds(1.6),
                new GpioWatchdogSettings("/dev/null", 3, false, null, false))));
        Assert.Contains("/dev/null is not a GPIO chip", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_none_backend_feeds_nothing_but_reports_its_timeout()
    {
        using var device = WatchdogDevice.Create(new WatchdogSettings(WatchdogBackend.None, "/dev/null", TimeSpan.FromSeconds(7)));
        device.Keepalive();
        Assert.Equal("none", device.Backend);
        Assert.Equal(TimeSpan.FromSeconds(7), device.Timeout);
        Assert.False(device.LastBootByWatchdog);
    }

    [Fact]
    public void Holders_of_a_device_are_found_through_proc()
    {
        using var directory = new TempDirectory();
        var path = directory.File("fake-device");
        File.WriteAllText(path, string.Empty);
        using var held = File.OpenRead(path);
        var holders = WatchdogHolders.Find(path);
        Assert.Contains(holders, h => h.Pid == Environment.ProcessId);
    }

    [Fact]
    public void Precise_waiter_times_out_close_to_the_requested_time()
    {
        using var waiter = new PreciseWaiter();
        var watch = Stopwatch.StartNew();
        Assert.False(waiter.Wait(TimeSpan.FromMilliseconds(20)));
        Assert.InRange(watch.Elapsed.TotalMilliseconds, 19.9, 500);
    }

    [Fact]
    public async Task Precise_waiter_is_woken_at_once_from_another_thread()
    {
        using var waiter = new PreciseWaiter();
        var tid = 0;
        // Asynchronous continuations: otherwise SetResult runs the rest of this test on the waiter's own thread, and
        // its Join below waits for itself forever (seen: the test host hung after every other test had passed).
        var waiting = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            Volatile.Write(ref tid, NativeThreads.CurrentId());
            waiting.SetResult(waiter.Wait(TimeSpan.FromSeconds(30)));
        });
        thread.Start();
        SpinWait.SpinUntil(() => Volatile.Read(ref tid) != 0);
        NativeThreads.WaitUntilSleeping(Volatile.Read(ref tid));
        var watch = Stopwatch.StartNew();
        waiter.Wake();
        // Woken, not timed out (the wait was for 30 s).
        Assert.True(await waiting.Task);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10));
        thread.Join();
    }

    [Fact]
    public void Realtime_policy_applied_to_a_thread_is_what_proc_reports()
    {
        string? described = null;
        RealtimeOutcome outcome = default;
        var thread = new Thread(() =>
        {
            outcome = RealtimeScheduling.ApplyToCurrentThread(RealtimePolicy.RoundRobin, 10);
            described = RealtimeScheduling.DescribeThread(UnixAccounts.CurrentThreadId);
        });
        thread.Start();
        thread.Join();
        // As root (CI) this applies; elsewhere it must say why not, and proc must agree with the outcome.
        Assert.Equal(outcome.Applied ? "SCHED_RR 10" : "SCHED_OTHER", described);
        Assert.True(outcome.Applied || outcome.Description.Contains("refused", StringComparison.Ordinal));
    }

    [Fact]
    public void Realtime_priority_out_of_range_is_explained()
    {
        var outcome = RealtimeScheduling.ApplyToCurrentThread(RealtimePolicy.Fifo, 150);
        Assert.False(outcome.Applied);
        Assert.Contains("outside 1..99", outcome.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Group_names_resolve_through_nss()
    {
        Assert.True(UnixAccounts.TryGetGroupId("root", out var gid));
        Assert.Equal(0u, gid);
        Assert.True(UnixAccounts.TryGetGroupId("4242", out var numeric));
        Assert.Equal(4242u, numeric);
        Assert.False(UnixAccounts.TryGetGroupId("no-such-group-apphb", out _));
    }
}

public class ProcessExitWatcherTests
{
    [Fact]
    public void A_watched_process_is_reported_the_moment_it_is_killed_and_only_once()
    {
        using var watcher = new AppHb.Linux.Processes.ProcessExitWatcher();
        using var child = Process.Start(new ProcessStartInfo("sleep", "30"))!;
        var exits = 0;
        using var exited = new ManualResetEventSlim();
        using var watch = watcher.Watch(child.Id, () =>
        {
            Interlocked.Increment(ref exits);
            exited.Set();
        });
        Assert.False(exited.Wait(100));
        var killed = Stopwatch.StartNew();
        child.Kill();
        Assert.True(exited.Wait(TimeSpan.FromSeconds(30)));
        // A second process's exit, reported by the same watcher after the first: no second report of the first came.
        ReportedAfter(watcher);
        Assert.Equal(1, exits);
        Assert.Equal(0, watcher.Count);
        child.WaitForExit();
    }

    /// <summary>Watches and kills one more process and waits for its report: what the watcher would have reported
    /// about the processes before it has been reported by then.</summary>
    private static void ReportedAfter(AppHb.Linux.Processes.ProcessExitWatcher watcher)
    {
        using var marker = Process.Start(new ProcessStartInfo("sleep", "30"))!;
        using var reported = new ManualResetEventSlim();
        using var watch = watcher.Watch(marker.Id, reported.Set);
        marker.Kill();
        Assert.True(reported.Wait(TimeSpan.FromSeconds(30)), "the marker's exit was never reported");
        marker.WaitForExit();
    }

    [Fact]
    public void Posted_work_runs_on_the_watchers_own_thread_in_order()
    {
        using var watcher = new AppHb.Linux.Processes.ProcessExitWatcher();
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(int, string?)>();
        using var done = new ManualResetEventSlim();
        for (var i = 0; i < 3; i++)
        {
            var n = i;
            watcher.Post(() => seen.Enqueue((n, Thread.CurrentThread.Name)));
        }

        watcher.Post(done.Set);
        Assert.True(done.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal([(0, "apphb-pidfd"), (1, "apphb-pidfd"), (2, "apphb-pidfd")], seen);
    }

    [Fact]
    public void An_already_gone_pid_is_reported_at_once_and_a_disposed_watch_never()
    {
        using var watcher = new AppHb.Linux.Processes.ProcessExitWatcher();
        using var gone = Process.Start(new ProcessStartInfo("true"))!;
        gone.WaitForExit();
        var reported = false;
        watcher.Watch(gone.Id, () => reported = true).Dispose();
        Assert.True(reported);

        using var child = Process.Start(new ProcessStartInfo("sleep", "30"))!;
        var called = false;
        watcher.Watch(child.Id, () => called = true).Dispose();
        child.Kill();
        child.WaitForExit();
        ReportedAfter(watcher);
        Assert.False(called);
        Assert.Equal(0, watcher.Count);
    }
}
