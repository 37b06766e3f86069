using System.Diagnostics;
using AppHb.Cluster.Fencing;
using AppHb.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>The fence-agent driver against a real agent process (Agents/fence_apphb_test, speaking the ClusterLabs
/// fence-agent API), made to succeed, fail, hang and lie.</summary>
public sealed class FenceAgentDriverTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly string _agent;

    public FenceAgentDriverTests()
    {
        _agent = Path.Combine(_directory.Path, "fence_apphb_test");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Agents", "fence_apphb_test"), _agent);
        File.SetUnixFileMode(_agent, UnixFileMode.UserRead | UnixFileMode.UserExecute);
    }

    private string State => Path.Combine(_directory.Path, "node-b.power");

    private string Log => Path.Combine(_directory.Path, "requests.log");

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Off_is_confirmed_only_when_status_says_off()
    {
        var driver = Driver(TimeSpan.FromSeconds(20), ("ip", "192.0.2.7"), ("username", "admin"), ("off_delay", "0.3"));
        var result = await driver.FenceAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Confirmed, result.Detail);
        Assert.Contains("the peer is off", result.Detail, StringComparison.Ordinal);
        Assert.Equal("off", (await File.ReadAllTextAsync(State, TestContext.Current.CancellationToken)).Trim());
        // The agent was given every option and the action, one key=value per line: off first, then status.
        var requests = (await File.ReadAllTextAsync(Log, TestContext.Current.CancellationToken)).Split("--\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("ip=192.0.2.7\nusername=admin\n", requests[0], StringComparison.Ordinal);
        Assert.EndsWith("action=off\n", requests[0], StringComparison.Ordinal);
        Assert.All(requests.Skip(1), r => Assert.EndsWith("action=status\n", r, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_status_agent_starts_while_off_runs_and_acts_only_after_it()
    {
        // off takes 1 s; the status request's agent is already running by then, waiting for its input.
        var result = await Driver(TimeSpan.FromSeconds(20), ("off_delay", "1")).FenceAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Confirmed, result.Detail);
        var starts = Starts();
        Assert.True(starts.Count == 2, $"{starts.Count} agent runs");
        var apart = TimeSpan.FromTicks((starts[1].At - starts[0].At) / 100);
        Assert.True(apart < TimeSpan.FromSeconds(0.8), $"the status agent started {apart.TotalSeconds:0.000} s after off's: not while off ran");
        // ... and it acted after off: the requests, in the order they were read, are off then status.
        var requests = (await File.ReadAllTextAsync(Log, TestContext.Current.CancellationToken)).Split("--\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, requests.Length);
        Assert.EndsWith("action=off\n", requests[0], StringComparison.Ordinal);
        Assert.EndsWith("action=status\n", requests[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_status_agent_started_ahead_of_a_failed_off_is_killed_without_acting()
    {
        var result = await Driver(TimeSpan.FromSeconds(20), ("fail", "off")).FenceAsync(TestContext.Current.CancellationToken);

        Assert.False(result.Confirmed);
        var starts = Starts();
        Assert.Equal(2, starts.Count);
        // Only off's request was read; the other run is gone, never having had its input.
        Assert.Single((await File.ReadAllTextAsync(Log, TestContext.Current.CancellationToken)).Split("--\n", StringSplitOptions.RemoveEmptyEntries));
        Assert.True(await Polling.UntilAsync(() => !Directory.Exists($"/proc/{starts[1].Pid}"), TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken),
            $"the status agent started ahead (pid {starts[1].Pid}) outlived the fence");
    }

    [Fact]
    public async Task A_failing_agent_is_a_failed_fence_with_its_words()
    {
        var result = await Driver(TimeSpan.FromSeconds(20), ("fail", "off")).FenceAsync(TestContext.Current.CancellationToken);

        Assert.False(result.Confirmed);
        Assert.Contains("action=off failed with exit status 1", result.Detail, StringComparison.Ordinal);
        Assert.Contains("simulated failure of action off", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_off_the_status_contradicts_is_never_confirmed()
    {
        var watch = Stopwatch.StartNew();
        var result = await Driver(TimeSpan.FromSeconds(1.5), ("stuck_on", "1")).FenceAsync(TestContext.Current.CancellationToken);

        Assert.False(result.Confirmed);
        Assert.Contains("not confirmed within the method's timeout of 1.5 s", result.Detail, StringComparison.Ordinal);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.4), $"gave up after {watch.Elapsed}");
        Assert.Contains("action=status", await File.ReadAllTextAsync(Log, TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hanging_agent_times_out_and_is_killed()
    {
        var result = await Driver(TimeSpan.FromSeconds(1), ("hang", "off")).FenceAsync(TestContext.Current.CancellationToken);

        Assert.False(result.Confirmed);
        Assert.Contains("timeout", result.Detail, StringComparison.Ordinal);
        var pid = int.Parse((await File.ReadAllTextAsync(State + ".pid", TestContext.Current.CancellationToken)).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        // Killed with what it started (its sleep), not left behind.
        Assert.True(await Polling.UntilAsync(() => !Directory.Exists($"/proc/{pid}"), TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken),
            $"the agent (pid {pid}) outlived its fence");
    }

    [Fact]
    public async Task A_configured_reboot_counts_as_its_off_half()
    {
        var result = await Driver(TimeSpan.FromSeconds(20), ("action", "reboot")).FenceAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Confirmed, result.Detail);
        Assert.Contains("rebooted", result.Detail, StringComparison.Ordinal);
        Assert.True(File.Exists(State + ".reboots"));
        // The configuration's action is replaced, never sent twice.
        Assert.Single((await File.ReadAllTextAsync(Log, TestContext.Current.CancellationToken)).Split('\n'), l => l.StartsWith("action=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_agent_says_so()
    {
        var method = new FenceMethod("agent", "fence_nonexistent", [], TimeSpan.FromSeconds(5));
        var result = await FenceDriver.CreateAgent(method, TimeProvider.System, _directory.Path).FenceAsync(TestContext.Current.CancellationToken);

        Assert.False(result.Confirmed);
        Assert.Contains("fence_nonexistent does not exist", result.Detail, StringComparison.Ordinal);
    }

    /// <summary>The agent's runs in the order they started: pid and start time (ns).</summary>
    private List<(int Pid, long At)> Starts() =>
        [.. File.ReadAllLines(_agent + ".started").Select(l => l.Split(' ')).Select(p => (int.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture))).OrderBy(s => s.Item2)];

    private FenceDriver Driver(TimeSpan timeout, params (string Key, string Value)[] options)
    {
        var all = new List<KeyValuePair<string, string>> { new("state", State), new("log", Log) };
        all.AddRange(options.Select(o => new KeyValuePair<string, string>(o.Key, o.Value)));
        return FenceDriver.CreateAgent(new FenceMethod("agent", "fence_apphb_test", all, timeout), TimeProvider.System, _directory.Path);
    }
}
