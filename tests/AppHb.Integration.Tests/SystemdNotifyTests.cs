using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>apphbd under a fake service manager: a datagram socket given as NOTIFY_SOCKET, as systemd does for
/// Type=notify units.</summary>
public sealed class SystemdNotifyTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly Socket _manager = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly ConcurrentQueue<(long At, string Message)> _received = new();
    private readonly Thread _reader;

    public SystemdNotifyTests()
    {
        _manager.Bind(new UnixDomainSocketEndPoint(NotifyPath));
        _reader = new Thread(() =>
        {
            var buffer = new byte[4096];
            try
            {
                while (true)
                {
                    var n = _manager.Receive(buffer);
                    _received.Enqueue((Stopwatch.GetTimestamp(), Encoding.UTF8.GetString(buffer, 0, n)));
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }) { IsBackground = true };
        _reader.Start();
    }

    private string NotifyPath => _directory.File("notify.sock");

    [Fact]
    public async Task Ready_only_when_serving_then_watchdog_pings_at_half_the_interval_status_and_stopping()
    {
        var daemon = await DaemonProcess.StartAsync(environment: new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = NotifyPath,
            ["WATCHDOG_USEC"] = "300000",
        });
        await WaitFor(() => _received.Any(m => m.Message.Contains("READY=1", StringComparison.Ordinal)));
        // READY=1 means the client socket is bound and accepting.
        using (var probe = await daemon.ConnectAsync())
        {
            Assert.True(probe.Connected);
        }

        var ready = _received.First(m => m.Message.Contains("READY=1", StringComparison.Ordinal));
        Assert.Contains("STATUS=0 client(s), 0 hung; watchdog none", ready.Message, StringComparison.Ordinal);
        List<long> Pings() => _received.Where(m => m.Message.Contains("WATCHDOG=1", StringComparison.Ordinal)).Select(m => m.At).ToList();
        await WaitFor(() => Pings().Count >= 8);
        var pings = Pings();
        var gaps = pings.Zip(pings.Skip(1), (a, b) => Stopwatch.GetElapsedTime(a, b).TotalMilliseconds).Order().ToList();
        // Every half interval (150 ms), never in a burst; a busy machine may stretch a gap, so the median says the
        // schedule and the minimum says it does not flood.
        Assert.True(gaps[0] >= 100, $"gaps {string.Join(", ", gaps.Select(g => g.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))} ms");
        Assert.InRange(gaps[gaps.Count / 2], 100, 200);

        Assert.Equal(0, await daemon.StopAsync());
        await WaitFor(() => _received.Any(m => m.Message.Contains("STOPPING=1", StringComparison.Ordinal)));
        await daemon.DisposeAsync();
    }

    /// <param name="hangupIgnored">Started under nohup: an inherited "ignore" for SIGHUP must not turn reloads off (it
    /// did: the runtime keeps an ignored signal ignored even with a handler registered).</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SIGHUP_reloads_between_RELOADING_with_the_monotonic_time_and_READY(bool hangupIgnored)
    {
        await using var daemon = await DaemonProcess.StartAsync("services:\n  one:\n    command: [/bin/sleep, \"1000\"]\n", environment: new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = NotifyPath,
        }, hangupIgnored: hangupIgnored);
        await WaitFor(() => _received.Any(m => m.Message.Contains("READY=1", StringComparison.Ordinal)));
        var config = await File.ReadAllTextAsync(daemon.ConfigPath, TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(daemon.ConfigPath, config + "  two:\n    command: [/bin/sleep, \"1001\"]\n", TestContext.Current.CancellationToken);
        var before = _received.Count;
        var sentAt = Stopwatch.GetTimestamp();
        Assert.True(ProcessRunner.Signal(daemon.Pid, 1));
        await WaitFor(() => _received.Skip(before).Any(m => m.Message.Contains("READY=1", StringComparison.Ordinal)), () =>
            $"after SIGHUP: {string.Join(" | ", _received.Skip(before).Select(m => m.Message.Replace('\n', ' ')))}; daemon running: {daemon.IsRunning}, "
            + $"state: {(File.Exists($"/proc/{daemon.Pid}/status") ? File.ReadAllLines($"/proc/{daemon.Pid}/status").FirstOrDefault(l => l.StartsWith("State:", StringComparison.Ordinal)) : "gone")}\n"
            + string.Join('\n', daemon.Lines.TakeLast(40)));
        var reloading = _received.Skip(before).First(m => m.Message.Contains("RELOADING=1", StringComparison.Ordinal));
        var monotonic = long.Parse(reloading.Message.Split('\n').Single(l => l.StartsWith("MONOTONIC_USEC=", StringComparison.Ordinal))[15..], System.Globalization.CultureInfo.InvariantCulture);
        // CLOCK_MONOTONIC in microseconds: the same clock as Stopwatch here, taken between the signal and its READY.
        Assert.InRange(monotonic, sentAt / (Stopwatch.Frequency / 1_000_000), Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000));
        await daemon.WaitForLineAsync("Reload: 1 change(s): two: added, starting", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_watchdog_meant_for_another_pid_is_not_answered()
    {
        await using var daemon = await DaemonProcess.StartAsync(environment: new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = NotifyPath,
            ["WATCHDOG_USEC"] = "200000",
            ["WATCHDOG_PID"] = "1",
        });
        await WaitFor(() => _received.Any(m => m.Message.Contains("READY=1", StringComparison.Ordinal)));
        // Three tickle periods (200 ms each) prove the daemon ran long enough to have pinged every 100 ms.
        var control = new AppHb.Client.AppHbControl(daemon.SocketPath);
        var tickles = (await control.GetStatusAsync()).Watchdog.Tickles;
        var watch = Stopwatch.StartNew();
        while ((await control.GetStatusAsync()).Watchdog.Tickles < tickles + 3)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), "the tickle loop never ran three more times");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.DoesNotContain(_received, m => m.Message.Contains("WATCHDOG=1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Under_journald_log_lines_carry_syslog_priorities()
    {
        await using var daemon = await DaemonProcess.StartAsync(environment: new Dictionary<string, string> { ["JOURNAL_STREAM"] = "8:1234" });
        Assert.Contains(daemon.Lines, l => l.StartsWith("<6>", StringComparison.Ordinal) && l.Contains("apphbd ready", StringComparison.Ordinal));
        Assert.DoesNotContain(daemon.Lines, l => l.Contains("info:", StringComparison.Ordinal));
    }

    private static async Task WaitFor(Func<bool> condition, Func<string>? story = null)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"condition not met within 20 s{(story is null ? "" : ": " + story())}");
            await Task.Delay(10);
        }
    }

    public void Dispose()
    {
        _manager.Dispose();
        _reader.Join(TimeSpan.FromSeconds(2));
        _directory.Dispose();
    }
}
