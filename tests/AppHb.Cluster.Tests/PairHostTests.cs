using System.Collections.Concurrent;
using System.Net;
using System.Text;
using AppHb.Cluster.Addresses;
using AppHb.Cluster.Fencing;
using AppHb.Cluster.Hosting;
using AppHb.Cluster.Links;
using AppHb.Core.Cluster;
using AppHb.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>Two nodes of the pair, each a <see cref="PairHost"/> in a network namespace of its own, joined by a
/// dedicated link and a LAN (veth pairs): real datagrams, real addresses, a real fence agent that powers a namespace
/// off. Only the group is a stand-in (the daemon's supervisor runs the real one).</summary>
[Collection(nameof(PoolStarvingTests))]
public sealed class PairHostTests : IAsyncLifetime
{
    private const uint Cluster = 0x41484251;
    private const string ServiceIp = "10.215.2.100";
    private static readonly byte[] Key = Encoding.ASCII.GetBytes("abcdef0123456789abcdef0123456789");
    private static readonly ClusterTimings Timings = new(
        Keepalive: TimeSpan.FromMilliseconds(100), WarnTime: TimeSpan.FromMilliseconds(300), DeadTime: TimeSpan.FromMilliseconds(800),
        InitDead: TimeSpan.FromSeconds(5), LinkHold: TimeSpan.FromMilliseconds(300), FenceDelay: TimeSpan.FromMilliseconds(200),
        FenceRetry: TimeSpan.FromSeconds(1), FailbackDelay: null);

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly TempDirectory _directory = new();
    private readonly List<PairHost> _hosts = [];
    private NetworkNamespace _a = null!;
    private NetworkNamespace _b = null!;

    public async ValueTask InitializeAsync()
    {
        TestFenceAgents.Install(_directory.Path, "fence_apphb_netns");
        _a = await NetworkNamespace.CreateAsync("apphb-pa");
        _b = await NetworkNamespace.CreateAsync("apphb-pb");
        await NetworkNamespace.ConnectAsync(_a, "ded0", "10.215.1.1/24", _b, "ded0", "10.215.1.2/24");
        await NetworkNamespace.ConnectAsync(_a, "lan0", "10.215.2.1/24", _b, "lan0", "10.215.2.2/24");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.DisposeAsync();
        }

        _a.Dispose();
        _b.Dispose();
        _directory.Dispose();
    }

    private sealed class Group : IPairGroup
    {
        private volatile bool _running;

        public bool IsRunning => _running;

        public int Starts;

        public void Start()
        {
            Interlocked.Increment(ref Starts);
            _running = true;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            _running = false;
            return Task.CompletedTask;
        }
    }

    private sealed record Node(PairHost Host, Group Group, ConcurrentQueue<ClusterEvent> Events, NetworkNamespace Namespace);

    private async Task<Node> StartAsync(NetworkNamespace here, ushort id, NetworkNamespace peer, bool preferred, IReadOnlyList<IPAddress>? pingTargets = null)
    {
        var me = id == 1 ? 1 : 2;
        var other = 3 - me;
        var options = new PairNodeOptions(Cluster, id, (ushort)other, preferred, Timings,
            [
                new ClusterLink("cross", LinkKind.Dedicated, "ded0", IPAddress.Parse($"10.215.1.{me}"), IPAddress.Parse($"10.215.1.{other}"), 7407),
                new ClusterLink("lan", LinkKind.Lan, "lan0", IPAddress.Parse($"10.215.2.{me}"), IPAddress.Parse($"10.215.2.{other}"), 7407),
            ],
            pingTargets ?? [],
            [new ServiceIp(IPAddress.Parse(ServiceIp), 24, "lan0", 2, TimeSpan.FromMilliseconds(50))],
            [new FenceMethod("agent", "fence_apphb_netns", [new("netns", peer.Name)], TimeSpan.FromSeconds(20))],
            Path.Combine(_directory.Path, $"node{id}.state"),
            FenceAgentDirectory: _directory.Path);
        var group = new Group();
        var events = new ConcurrentQueue<ClusterEvent>();
        var host = await here.Run(() => PairHost.Open(options, Key, group, _ => { }, events.Enqueue, TimeProvider.System));
        _hosts.Add(host);
        host.Start();
        return new Node(host, group, events, here);
    }

    private static async Task<bool> HoldsServiceIpAsync(NetworkNamespace node) =>
        (await node.IpAsync("-o", "address", "show", "dev", "lan0")).Contains($" {ServiceIp}/24", StringComparison.Ordinal);

    private static string Describe(Node node) =>
        $"{node.Host.Role}; events: {string.Join(" | ", node.Events.Select(e => $"{e.Kind}: {e.Message}"))}";

    [Fact]
    public async Task Started_together_the_preferred_node_becomes_active_with_the_ip_and_the_group_and_the_other_stands_by()
    {
        var a = await StartAsync(_a, 1, _b, preferred: true);
        var b = await StartAsync(_b, 2, _a, preferred: false);
        var token = TestContext.Current.CancellationToken;
        Assert.True(await Polling.UntilAsync(() => a.Host.Role == ClusterRole.Active && b.Host.Role == ClusterRole.Standby, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");
        Assert.True(await Polling.UntilAsync(() => a.Group.IsRunning, Bound, token));
        Assert.True(await HoldsServiceIpAsync(_a));
        Assert.False(await HoldsServiceIpAsync(_b));
        Assert.False(b.Group.IsRunning);

        // And it stays so: a second later nothing has moved.
        await Task.Delay(TimeSpan.FromSeconds(1), token);
        Assert.Equal((ClusterRole.Active, ClusterRole.Standby, 1, 0), (a.Host.Role, b.Host.Role, a.Group.Starts, b.Group.Starts));
        Assert.Equal((0L, 0L), (a.Host.Refused, b.Host.Refused));
    }

    [Fact]
    public async Task The_pair_heartbeats_and_decides_while_the_thread_pool_is_starved()
    {
        var a = await StartAsync(_a, 1, _b, preferred: true);
        var b = await StartAsync(_b, 2, _a, preferred: false);
        var token = TestContext.Current.CancellationToken;
        Assert.True(await Polling.UntilAsync(() => a.Host.Role == ClusterRole.Active && b.Host.Role == ClusterRole.Standby && a.Group.IsRunning, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");
        var before = (a.Events.Count, b.Events.Count);

        // Every pool thread held for 2.5 s (three times deadtime), as replication's synchronous I/O once held them:
        // the pool may not add any, and this test's own thread waits without it.
        ThreadPool.GetMaxThreads(out var workers, out var completions);
        Assert.True(ThreadPool.SetMaxThreads(Environment.ProcessorCount, completions), "could not cap the pool");
        using var release = new ManualResetEventSlim();
        try
        {
            for (var i = 0; i <= Environment.ProcessorCount; i++)
            {
                ThreadPool.UnsafeQueueUserWorkItem(_ => release.Wait(TimeSpan.FromSeconds(10)), null);
            }

            Thread.Sleep(TimeSpan.FromSeconds(2.5));
        }
        finally
        {
            release.Set();
            ThreadPool.SetMaxThreads(workers, completions);
        }

        // Neither node stopped with the pool: no pause of a second or more (the loop on the pool reports the whole
        // 2.5 s; a busy machine may still delay a thread now and then, so a short one is not held against it), no
        // fence; the roles as they were.
        await Task.Delay(TimeSpan.FromMilliseconds(500), token);
        var during = a.Events.Skip(before.Item1).Concat(b.Events.Skip(before.Item2)).ToList();
        var story = string.Join("\n", during.Select(e => $"{e.Kind}: {e.Message}"));
        Assert.DoesNotContain(during, e => e.Kind == "resumed"
            && int.Parse(System.Text.RegularExpressions.Regex.Match(e.Message, @"did not run for (\d+) ms").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 1000);
        Assert.DoesNotContain(during, e => e.Kind is "fencing" or "takeover" or "step-down");
        Assert.True((a.Host.Role, b.Host.Role) == (ClusterRole.Active, ClusterRole.Standby), story);
    }

    [Fact]
    public async Task A_node_alone_past_initdead_that_reaches_no_ping_target_waits_without_spinning_its_threads()
    {
        var token = TestContext.Current.CancellationToken;
        var started = System.Diagnostics.Stopwatch.StartNew();
        // Its peer runs nothing, and nobody has the ping target's address: it must neither fence nor serve.
        var a = await StartAsync(_a, 1, _b, preferred: true, pingTargets: [IPAddress.Parse("10.215.2.254")]);
        Assert.True(await Polling.UntilAsync(() => a.Events.Any(e => e.Kind == "ping-targets-lost"), Bound, token), Describe(a));
        var pastInitDead = Timings.InitDead + TimeSpan.FromMilliseconds(500) - started.Elapsed;
        if (pastInitDead > TimeSpan.Zero)
        {
            await Task.Delay(pastInitDead, token);
        }

        // Two seconds of its pair's threads (this process's only ones: the other node is not started). Waiting, they
        // use a few milliseconds of CPU for heartbeats and pings; the loop that spun on initdead, passed and named
        // again, used all of a core.
        var before = PairThreadsCpu();
        await Task.Delay(TimeSpan.FromSeconds(2), token);
        var used = PairThreadsCpu() - before;
        Assert.True(used < TimeSpan.FromMilliseconds(500), $"the pair's threads used {used.TotalMilliseconds:0} ms of CPU in 2 s; {Describe(a)}");
        Assert.Equal(ClusterRole.Starting, a.Host.Role);
        Assert.DoesNotContain(a.Events, e => e.Kind is "fencing" or "command-failed");
    }

    /// <summary>CPU time of this process's threads named after the pair (its loop and its links' receivers).</summary>
    private static TimeSpan PairThreadsCpu() =>
        NativeThreads.CpuTime(name => name == "apphb-pair" || name.StartsWith("apphb-peer-", StringComparison.Ordinal));

    [Fact]
    public async Task A_node_that_is_not_active_removes_a_service_ip_it_finds_on_its_interface_and_says_so()
    {
        var token = TestContext.Current.CancellationToken;
        // Left behind by an apphbd that was killed while active and restarted without a reboot.
        await _b.IpAsync("address", "add", $"{ServiceIp}/24", "dev", "lan0");
        var a = await StartAsync(_a, 1, _b, preferred: true);
        var b = await StartAsync(_b, 2, _a, preferred: false);
        Assert.True(await Polling.UntilAsync(() => a.Host.Role == ClusterRole.Active && b.Host.Role == ClusterRole.Standby && a.Group.IsRunning, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");
        Assert.True(await Polling.UntilAsync(async () => !await HoldsServiceIpAsync(_b), Bound, token), $"B: {Describe(b)}");

        // And put there by hand on the standby later: gone within a few keepalives, the active's untouched.
        await _b.IpAsync("address", "add", $"{ServiceIp}/24", "dev", "lan0");
        Assert.True(await Polling.UntilAsync(async () => !await HoldsServiceIpAsync(_b), Bound, token), $"B: {Describe(b)}");
        Assert.True(await HoldsServiceIpAsync(_a));
        Assert.Equal(2, b.Events.Count(e => e.Kind == "stray-service-ip"));
        Assert.DoesNotContain(a.Events, e => e.Kind == "stray-service-ip");
    }

    [Fact]
    public async Task When_the_active_node_falls_silent_the_standby_fences_it_first_then_takes_the_ip_and_the_group()
    {
        var a = await StartAsync(_a, 1, _b, preferred: true);
        var b = await StartAsync(_b, 2, _a, preferred: false);
        var token = TestContext.Current.CancellationToken;
        Assert.True(await Polling.UntilAsync(() => a.Host.Role == ClusterRole.Active && b.Host.Role == ClusterRole.Standby && a.Group.IsRunning, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");

        // A's daemon dies: its heartbeats stop, its address stays (its node is still powered).
        await a.Host.DisposeAsync();
        _hosts.Remove(a.Host);
        Assert.True(await Polling.UntilAsync(() => b.Host.Role == ClusterRole.Active && b.Group.IsRunning, Bound, token), $"B: {Describe(b)}");
        Assert.True(await HoldsServiceIpAsync(_b));

        // Fenced before the takeover: A's links are down (the agent powered its namespace off), and B said so first.
        var up = await _a.IpAsync("-o", "link", "show", "up");
        Assert.DoesNotContain("lan0", up, StringComparison.Ordinal);
        Assert.DoesNotContain("ded0", up, StringComparison.Ordinal);
        var kinds = b.Events.Select(e => e.Kind).ToList();
        Assert.Contains("fenced", kinds);
        Assert.True(kinds.IndexOf("peer-silent") < kinds.IndexOf("fenced"), string.Join(", ", kinds));
    }

    [Fact]
    public async Task A_switchover_hands_the_ip_and_the_group_over_the_links_and_a_failback_returns_them()
    {
        var a = await StartAsync(_a, 1, _b, preferred: true);
        var b = await StartAsync(_b, 2, _a, preferred: false);
        var token = TestContext.Current.CancellationToken;
        Assert.True(await Polling.UntilAsync(() => a.Host.Role == ClusterRole.Active && b.Host.Role == ClusterRole.Standby && a.Group.IsRunning, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");

        // Asked on the standby (once it has heard that A is active): it asks A to release, which stops its group,
        // drops the address and says so; then the standby takes over, with no fence (the release was confirmed over a
        // link).
        // (Refused until each node has heard the other's latest generations, as an operator would be told.)
        Assert.True(await Polling.UntilAsync(() => a.Host.InSyncWithPeer && b.Host.InSyncWithPeer && b.Host.PeerRole == ClusterRole.Active, Bound, token));
        Assert.Null(await b.Host.SwitchoverAsync());
        Assert.True(await Polling.UntilAsync(() => b.Host.Role == ClusterRole.Active && b.Group.IsRunning && a.Host.Role == ClusterRole.Standby, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");
        Assert.False(a.Group.IsRunning);
        Assert.True(await HoldsServiceIpAsync(_b));
        Assert.False(await HoldsServiceIpAsync(_a));
        Assert.DoesNotContain(b.Events, e => e.Kind == "fenced");
        Assert.Contains("lan0", await _a.IpAsync("-o", "link", "show", "up"), StringComparison.Ordinal);

        // The failback, asked on the node that holds the group, returns it to the preferred node.
        Assert.True(await Polling.UntilAsync(() => a.Host.InSyncWithPeer && b.Host.InSyncWithPeer && a.Host.PeerRole == ClusterRole.Active, Bound, token));
        Assert.Null(await b.Host.FailbackAsync());
        Assert.True(await Polling.UntilAsync(() => a.Host.Role == ClusterRole.Active && a.Group.IsRunning && b.Host.Role == ClusterRole.Standby, Bound, token),
            $"A: {Describe(a)}\nB: {Describe(b)}");
        Assert.True(await HoldsServiceIpAsync(_a));
        Assert.False(await HoldsServiceIpAsync(_b));

        // Refused, with the reason, where there is nothing to do.
        Assert.Equal("the group already runs on the preferred node", await a.Host.FailbackAsync());
    }
}

/// <summary>Tests that hold every thread-pool thread for a while: run alone, not beside tests that need the pool.</summary>
[CollectionDefinition(nameof(PoolStarvingTests), DisableParallelization = true)]
public sealed class PoolStarvingTests;
