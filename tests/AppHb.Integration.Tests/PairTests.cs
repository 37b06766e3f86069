using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>The pair with two real apphbd, each in a network namespace of its own (its node), joined by a dedicated
/// link and a LAN: the preferred node runs the group and holds the service IP; when its apphbd dies, the other fences
/// it (Agents/fence_apphb_netns powers the namespace off: every process in it killed, its links down) and only then
/// takes the address and starts the group.</summary>
public sealed class PairTests : IAsyncLifetime
{
    private const string ServiceIp = PairRig.ServiceIp;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private PairRig _rig = null!;
    private NetworkNamespace _a = null!;
    private NetworkNamespace _b = null!;
    private NetworkNamespace _gateway = null!;

    public async ValueTask InitializeAsync()
    {
        _rig = await PairRig.CreateAsync();
        (_a, _b, _gateway) = (_rig.A, _rig.B, _rig.Gateway);
    }

    public async ValueTask DisposeAsync() => await _rig.DisposeAsync();

    private async Task<DaemonProcess> StartAsync(int me, string? app = null, string? fence = null, string fenceDelay = "200ms", string deadtime = "1s") =>
        await _rig.StartAsync(me, _rig.Config(me, app ?? "command: [/bin/sleep, \"1000\"]", fence, fenceDelay, deadtime: deadtime));

    private static async Task<string?> AppStateAsync(DaemonProcess daemon) =>
        (await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Services.FirstOrDefault(s => s.Name == "app")?.State;

    private static async Task<bool> UntilAsync(Func<Task<bool>> condition) =>
        await Polling.UntilAsync(condition, Bound, TestContext.Current.CancellationToken);

    [Fact]
    public async Task The_preferred_node_runs_the_group_and_when_its_apphbd_dies_the_other_fences_it_then_takes_over()
    {
        var a = await StartAsync(1);
        var b = await StartAsync(2);

        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running" && await _rig.HoldsServiceIpAsync(1)),
            $"node1 never ran the group:\n{string.Join('\n', a.Lines)}\n--- node2:\n{string.Join('\n', b.Lines)}");
        Assert.Equal("waiting", await AppStateAsync(b));
        Assert.False(await _rig.HoldsServiceIpAsync(2));

        // node1's apphbd dies; its service and its address live on until the fence.
        Assert.True(ProcessRunner.Signal(a.Pid, 9));
        Assert.True(await UntilAsync(async () => await AppStateAsync(b) == "running" && await _rig.HoldsServiceIpAsync(2)),
            $"node2 never took over:\n{string.Join('\n', b.Lines)}");

        // Fenced first: nothing runs in node1's namespace any more and its links are down; node2 said so before it took
        // the address.
        Assert.Equal(string.Empty, (await ProcessRunner.RunAsync("ip", "netns", "pids", _a.Name)).StandardOutput.Trim());
        Assert.DoesNotContain("lan0", await _a.IpAsync("-o", "link", "show", "up"), StringComparison.Ordinal);
        var lines = b.Lines.ToList();
        var fenced = lines.FindIndex(l => l.Contains("Pair: fenced:", StringComparison.Ordinal));
        var tookOver = lines.FindIndex(l => l.Contains("Pair: takeover:", StringComparison.Ordinal));
        Assert.True(fenced >= 0 && tookOver > fenced, string.Join('\n', lines));
        // Told from a silent peer by its host refusing the heartbeats (ICMP port unreachable on both links): fenced
        // for a gone daemon, not after deadtime of silence.
        var gone = lines.FindIndex(l => l.Contains("Pair: peer-daemon-gone:", StringComparison.Ordinal));
        Assert.True(gone >= 0 && gone < fenced && !lines.Take(fenced).Any(l => l.Contains("Pair: peer-silent:", StringComparison.Ordinal)), string.Join('\n', lines));
    }

    [Fact]
    public async Task A_group_service_that_gives_up_with_escalation_failover_moves_the_group_to_the_peer_without_a_fence()
    {
        // The app fails on a node once that node's marker exists: it keeps dying there, and only there.
        string App(int me) => $$"""
            command: [/bin/sh, -c, "test -e {{Path.Combine(_rig.Directory, $"broken-node{me}")}} && exit 1; exec /bin/sleep 1000"]
                restart:
                  delay: 100ms
                  max-restarts: 2
                  window: 60s
                  escalation: failover
            """;
        var a = await StartAsync(1, App(1));
        var b = await StartAsync(2, App(2));
        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running" && await _rig.HoldsServiceIpAsync(1)),
            $"node1 never ran the group:\n{string.Join('\n', a.Lines)}");
        // Both have heard each other's generations (the hand-over is refused before), then node1's app breaks.
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(_rig.Directory, "broken-node1"), string.Empty, TestContext.Current.CancellationToken);
        var pid = (await new AppHbControl(a.SocketPath).GetStatusAsync()).Services.First(s => s.Name == "app").Pid!.Value;
        Assert.True(ProcessRunner.Signal(pid, 9));

        Assert.True(await UntilAsync(async () => await AppStateAsync(b) == "running" && await _rig.HoldsServiceIpAsync(2)),
            $"node2 never took over:\n{string.Join('\n', b.Lines)}\n--- node1:\n{string.Join('\n', a.Lines)}");
        Assert.False(await _rig.HoldsServiceIpAsync(1));
        Assert.Contains(a.Lines, l => l.Contains("Pair: service app asks for a failover", StringComparison.Ordinal));
        // Handed over, not fenced: node1 is alive, its links up, its apphbd standing by.
        Assert.DoesNotContain(b.Lines, l => l.Contains("Pair: fenced:", StringComparison.Ordinal));
        Assert.Contains("lan0", await _a.IpAsync("-o", "link", "show", "up"), StringComparison.Ordinal);
        // And its app stays shown as failed here (it gave up on this node), not started again while the peer runs it.
        Assert.Equal("failed", await AppStateAsync(a));
    }

    [Fact]
    public async Task An_orderly_stop_of_the_active_node_hands_the_group_over_without_a_fence()
    {
        var a = await StartAsync(1);
        var b = await StartAsync(2);
        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running" && await _rig.HoldsServiceIpAsync(1)),
            $"node1 never ran the group:\n{string.Join('\n', a.Lines)}");
        // Both have heard each other's generations (a hand-over is refused before).
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);

        Assert.Equal(0, await a.StopAsync());
        Assert.Contains(a.Lines, l => l.Contains("Pair: the group is handed over to the peer before apphbd stops", StringComparison.Ordinal));
        Assert.True(await UntilAsync(async () => await AppStateAsync(b) == "running" && await _rig.HoldsServiceIpAsync(2)),
            $"node2 never took over:\n{string.Join('\n', b.Lines)}");
        Assert.False(await _rig.HoldsServiceIpAsync(1));
        // Well past deadtime: node1 said it was leaving, and its silence after it handed over is not a failure to fence.
        Assert.Contains(a.Lines, l => l.Contains("Pair: the peer knows this node is stopping on purpose", StringComparison.Ordinal));
        await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);
        Assert.DoesNotContain(b.Lines, l => l.Contains("Pair: fenced:", StringComparison.Ordinal));
        Assert.Contains("lan0", await _a.IpAsync("-o", "link", "show", "up"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apphbctl_shows_the_pair_and_moves_its_group_by_switchover_and_failback_and_refuses_what_is_unsafe()
    {
        var a = await StartAsync(1);
        var b = await StartAsync(2);
        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running" && await _rig.HoldsServiceIpAsync(1)),
            $"node1 never ran the group:\n{string.Join('\n', a.Lines)}");
        // Both have heard each other's generations (a hand-over is refused before).
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);

        var (code, output, error) = await CliAsync(a, "cluster", "--json");
        Assert.True(code == 0, error);
        var pair = System.Text.Json.JsonSerializer.Deserialize(output, AppHb.Protocol.ProtocolJsonContext.Default.ClusterStatus)!;
        Assert.Equal(("node1", "active", "standby", true, true), (pair.Node, pair.Role, pair.PeerRole, pair.InSync, pair.GroupRunning));
        Assert.All(pair.Links, l => Assert.Equal("up", l.State));
        Assert.All(pair.Links, l => Assert.InRange(l.LastHeardAgeMs!.Value, 0, 1000));
        (code, output, _) = await CliAsync(b, "cluster");
        Assert.Equal(0, code);
        Assert.Contains("node node2: standby", output, StringComparison.Ordinal);
        Assert.Contains("peer node1: active", output, StringComparison.Ordinal);

        // Switchover: the reply comes when node2 is active.
        (code, output, error) = await CliAsync(a, "switchover");
        Assert.True(code == 0, error + string.Join('\n', a.Lines));
        Assert.Contains("the group runs on node2", output, StringComparison.Ordinal);
        Assert.True(await UntilAsync(async () => await AppStateAsync(b) == "running" && await _rig.HoldsServiceIpAsync(2)),
            $"node2 never took over:\n{string.Join('\n', b.Lines)}");
        Assert.False(await _rig.HoldsServiceIpAsync(1));

        // Failback, asked on the preferred node: the group comes home.
        (code, output, error) = await CliAsync(a, "failback");
        Assert.True(code == 0, error);
        Assert.Contains("the group runs on node1", output, StringComparison.Ordinal);
        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running" && await _rig.HoldsServiceIpAsync(1)),
            $"node1 never took the group back:\n{string.Join('\n', a.Lines)}");

        // A node held standby is never handed the group; after unstandby it may be again.
        (code, output, error) = await CliAsync(b, "standby");
        Assert.True(code == 0, error);
        Assert.True(await UntilAsync(async () => (await new AppHbControl(a.SocketPath).GetStatusAsync()).Cluster?.PeerRole == "standby"));
        await Task.Delay(TimeSpan.FromMilliseconds(300), TestContext.Current.CancellationToken);
        (code, _, error) = await CliAsync(a, "switchover");
        Assert.Equal(1, code);
        Assert.Contains("the peer is held standby", error, StringComparison.Ordinal);
        Assert.True(await _rig.HoldsServiceIpAsync(1));
        (code, _, error) = await CliAsync(b, "unstandby");
        Assert.True(code == 0, error);
        (code, _, error) = await CliAsync(a, "cluster", "resolve", "--survivor", "node1");
        Assert.Equal(1, code);
        Assert.Contains("there is no split brain to resolve", error, StringComparison.Ordinal);

        // The same story in the event stream and in /metrics.
        (_, output, _) = await CliAsync(a, "events");
        Assert.Contains("switchover", output, StringComparison.Ordinal);
        Assert.Contains("takeover", output, StringComparison.Ordinal);
        var metrics = await _rig.ScrapeAsync(1);
        Assert.Contains("apphb_cluster_role{role=\"active\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("apphb_cluster_peer_role{role=\"standby\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("apphb_cluster_link_up{link=\"cross\",kind=\"dedicated\"} 1", metrics, StringComparison.Ordinal);
        Assert.Matches(@"apphb_cluster_takeovers_total 2\b", metrics);
        Assert.Contains("apphb_cluster_datagrams_refused_total{reason=\"forged\"} 0", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_active_node_stopped_past_deadtime_and_continued_is_fenced_over_the_dedicated_link_and_stays_standby()
    {
        var a = await StartAsync(1, fence: PairRig.PeerLinkThenAgentFence(_b));
        var b = await StartAsync(2, fence: PairRig.PeerLinkThenAgentFence(_a));
        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running" && await _rig.HoldsServiceIpAsync(1)),
            $"node1 never ran the group:\n{string.Join('\n', a.Lines)}");
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);

        // node1's apphbd freezes well past deadtime (1 s): node2 asks it, over the dedicated link, to fence itself
        // (retrying for the method's 10 s); node1 wakes to that request among its peer's backlog.
        Assert.True(ProcessRunner.Signal(a.Pid, 19));
        await b.WaitForLineAsync("Pair: fencing", TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        Assert.True(ProcessRunner.Signal(a.Pid, 18));

        Assert.True(await UntilAsync(async () => await AppStateAsync(b) == "running" && await _rig.HoldsServiceIpAsync(2)),
            $"node2 never took over:\n{string.Join('\n', b.Lines)}\n--- node1:\n{string.Join('\n', a.Lines)}");
        Assert.True(b.Lines.Any(l => l.Contains("Pair: fenced: the peer is fenced: peer-link", StringComparison.Ordinal)),
            $"node2 did not fence over the link:\n{string.Join('\n', b.Lines)}\n--- node1:\n{string.Join('\n', a.Lines)}");
        // node1 fenced itself and lives on: its group stopped, its address gone, its LAN interface down, held standby.
        Assert.True(a.IsRunning);
        Assert.False(await _rig.HoldsServiceIpAsync(1));
        Assert.DoesNotContain("lan0", await _a.IpAsync("-o", "link", "show", "up"), StringComparison.Ordinal);
        Assert.Contains(a.Lines, l => l.Contains("Pair: resumed:", StringComparison.Ordinal));
        await Task.Delay(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);
        var cluster = (await new AppHbControl(a.SocketPath).GetStatusAsync()).Cluster!;
        Assert.Equal(("standby", true, false), (cluster.Role, cluster.Standby, cluster.GroupRunning));
        Assert.NotEqual("running", await AppStateAsync(a));
    }

    private static async Task<(int Code, string Output, string Error)> CliAsync(DaemonProcess daemon, params string[] args)
    {
        var (code, output, error) = await ProcessRunner.RunAsync("dotnet", [RepositoryPaths.CliDll, "--socket", daemon.SocketPath, .. args]);
        return (code, output, error);
    }

    private async Task<(DaemonProcess A, DaemonProcess B)> StartAnsweringPairAsync(string fenceDelay = "200ms", string deadtime = "1s")
    {
        var a = await StartAsync(1, _rig.Answering(1), fenceDelay: fenceDelay, deadtime: deadtime);
        var b = await StartAsync(2, _rig.Answering(2), fenceDelay: fenceDelay, deadtime: deadtime);
        Assert.True(await UntilAsync(async () => await _rig.AnswerOnServiceIpAsync() == "node1"),
            $"the client never reached node1 on the service IP:\n{string.Join('\n', a.Lines)}\n--- node2:\n{string.Join('\n', b.Lines)}");
        // Both have heard each other's generations (a hand-over is refused before).
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        return (a, b);
    }

    private static string Story(DaemonProcess a, DaemonProcess b) => $"node1:\n{string.Join('\n', a.Lines)}\n--- node2:\n{string.Join('\n', b.Lines)}";

    [Fact]
    public async Task Cutting_the_dedicated_link_moves_nothing_and_the_client_keeps_reaching_node1()
    {
        var (a, b) = await StartAnsweringPairAsync();

        await _a.IpAsync("link", "set", "ded0", "down");
        await b.WaitForLineAsync("Pair: dedicated-link-broken", TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
        Assert.False(await _rig.HoldsServiceIpAsync(2), Story(a, b));
        Assert.NotEqual("running", await AppStateAsync(b));
        Assert.DoesNotContain(a.Lines.Concat(b.Lines), l => l.Contains("Pair: fencing", StringComparison.Ordinal));

        // Healed: the link proves itself for the hold time and the pair is healthy again, still on node1.
        await _a.IpAsync("link", "set", "ded0", "up");
        Assert.True(await UntilAsync(async () => (await new AppHbControl(b.SocketPath).GetStatusAsync()).Cluster?.Links.All(l => l.State == "up") == true), Story(a, b));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
    }

    /// <summary>Both nodes start while the crossover cable is out: they hear each other over the LAN only, elect the
    /// preferred one through its announced generation (no fence: the peer is alive and says so), and the client
    /// reaches it; the cable back, nothing moves.</summary>
    [Fact]
    public async Task Two_nodes_started_with_the_dedicated_link_down_elect_one_over_the_LAN_without_a_fence()
    {
        await _a.IpAsync("link", "set", "ded0", "down");
        var a = await StartAsync(1, _rig.Answering(1));
        var b = await StartAsync(2, _rig.Answering(2));

        Assert.True(await UntilAsync(async () => await _rig.AnswerOnServiceIpAsync() == "node1"), Story(a, b));
        Assert.False(await _rig.HoldsServiceIpAsync(2), Story(a, b));
        Assert.Contains(a.Lines, l => l.Contains("heard over the LAN only", StringComparison.Ordinal));
        Assert.DoesNotContain(a.Lines.Concat(b.Lines), l => l.Contains("Pair: fencing", StringComparison.Ordinal));

        await _a.IpAsync("link", "set", "ded0", "up");
        Assert.True(await UntilAsync(async () => (await new AppHbControl(b.SocketPath).GetStatusAsync()).Cluster is { Role: "standby", PeerRole: "active" } cluster
            && cluster.Links.All(l => l.State == "up")), Story(a, b));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
        Assert.False(await _rig.HoldsServiceIpAsync(2), Story(a, b));
    }

    [Fact]
    public async Task The_active_node_losing_the_LAN_hands_over_and_the_client_reaches_node2_through_its_announcement()
    {
        var (a, b) = await StartAnsweringPairAsync();

        // node1's LAN port on the switch goes dark: it reaches neither the gateway nor node2 there; node2 reaches both.
        await _gateway.IpAsync("link", "set", "pa", "down");
        Assert.True(await UntilAsync(async () => await _rig.AnswerOnServiceIpAsync() == "node2"), Story(a, b));
        Assert.Contains(a.Lines, l => l.Contains("Pair: switchover: releasing the group: this node lost the LAN", StringComparison.Ordinal));
        Assert.DoesNotContain(b.Lines, l => l.Contains("Pair: fencing", StringComparison.Ordinal));
        Assert.False(await _rig.HoldsServiceIpAsync(1));
        var (client, node) = await _rig.NeighbourOfServiceIpAsync(2);
        Assert.Equal(node, client);
    }

    /// <summary>The client's neighbour cache names another hardware address for the service IP than the active
    /// node's (its takeover's announcements went into a LAN port that was dark at that moment, as in a partition
    /// checker trial that then waited 30 s for the cache to give up): when the LAN link to the peer comes back, the
    /// active node announces the address again and the client reaches it within seconds.</summary>
    [Fact]
    public async Task The_active_node_announces_the_service_IP_again_when_its_LAN_link_returns()
    {
        var (a, b) = await StartAnsweringPairAsync();
        await _rig.PowerOffAsync(1);
        Assert.True(await UntilAsync(async () => await _rig.AnswerOnServiceIpAsync() == "node2"), Story(a, b));

        // What a lost announcement leaves: the client's entry reachable, with an address nobody has.
        var entry = await _gateway.IpAsync("neigh", "show", PairRig.ServiceIp);
        var device = System.Text.RegularExpressions.Regex.Match(entry, @" dev (\S+)").Groups[1].Value;
        await _gateway.IpAsync("neigh", "replace", PairRig.ServiceIp, "lladdr", "02:00:5e:00:53:99", "dev", device, "nud", "reachable");
        Assert.Null(await _rig.AnswerOnServiceIpAsync());

        // node1 back: the LAN link returns (after its hold), and node2 announces again; the cache would keep the
        // bogus address reachable for 15 to 45 s, then probe it for 5 s more.
        await _rig.PowerOnAsync(1);
        await a.StartProcessAsync();
        var back = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(await Polling.UntilAsync(async () => await _rig.AnswerOnServiceIpAsync() == "node2", TimeSpan.FromSeconds(12), TestContext.Current.CancellationToken),
            $"the client did not reach node2 within 12 s of node1's return:\n{Story(a, b)}");
        var (client, node) = await _rig.NeighbourOfServiceIpAsync(2);
        Assert.Equal(node, client);
        Assert.True(back.Elapsed < TimeSpan.FromSeconds(12));
    }

    [Fact]
    public async Task Both_links_cut_at_once_end_with_exactly_one_node_active_and_the_other_fenced()
    {
        // The active node fences after deadtime less the fence delay (1 s of silence), the standby after deadtime
        // (3 s): the 2 s between outlast a fence (the agent takes about 0.2 s), so the active node wins.
        var (a, b) = await StartAnsweringPairAsync(fenceDelay: "2s", deadtime: "3s");

        await _rig.CutDedicatedAsync(true);
        await _rig.CutLanBetweenAsync(true);

        await a.WaitForLineAsync("Pair: fenced:", TimeSpan.FromSeconds(30));
        Assert.True(await UntilAsync(async () => (await ProcessRunner.RunAsync("ip", "netns", "pids", _b.Name)).StandardOutput.Trim().Length == 0), Story(a, b));
        Assert.True(await _rig.HoldsServiceIpAsync(1));
        Assert.False(await _rig.HoldsServiceIpAsync(2));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
        Assert.DoesNotContain(b.Lines, l => l.Contains("Pair: fenced:", StringComparison.Ordinal) || l.Contains("Pair: takeover", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Forged_and_foreign_datagrams_from_the_client_change_nothing_and_are_counted_by_reason()
    {
        var (a, b) = await StartAnsweringPairAsync();

        await _gateway.Run(() =>
        {
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
            var node1 = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.216.2.1"), 7408);
            var header = new AppHb.Cluster.Wire.PeerHeader(77, 2, 1, ulong.MaxValue, 1);
            // node2 saying it is active with a generation far ahead, signed with the wrong key; the same from another pair; noise.
            var claim = new AppHb.Cluster.Wire.PeerHeartbeat(header, AppHb.Core.Cluster.ClusterRole.Active, 1, true, true, [],
                [new AppHb.Core.Cluster.DataGeneration(1_000_000, 2)], 0);
            for (var i = 0; i < 20; i++)
            {
                socket.SendTo(AppHb.Cluster.Wire.PeerCodec.Encode(claim with { Header = header with { Sequence = (ulong)i + 1 } }, "not the pair's key, not at all!!"u8), node1);
                socket.SendTo(AppHb.Cluster.Wire.PeerCodec.Encode(claim with { Header = header with { ClusterId = 78 } }, "0123456789abcdef0123456789abcdef"u8), node1);
                socket.SendTo(new byte[] { 1, 2, 3, 4, 5 }, node1);
            }

            return 0;
        });

        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        var pair = (await new AppHbControl(a.SocketPath).GetStatusAsync()).Cluster!;
        Assert.Equal(("active", "standby", false, 60L), (pair.Role, pair.PeerRole, pair.SplitBrain, pair.DatagramsRefused));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
        var metrics = await _rig.ScrapeAsync(1);
        var refused = string.Join('\n', metrics.Split('\n').Where(l => l.Contains("datagrams_refused", StringComparison.Ordinal)));
        // The source address is checked before anything else: from the client's address, none of them is even
        // authenticated (the HMAC, cluster id and replay checks are PeerReceiver's unit tests, with the peer's address).
        Assert.True(refused.Contains("apphb_cluster_datagrams_refused_total{reason=\"wrongnode\"} 60", StringComparison.Ordinal), refused);
        // Logged, not flooded: one event for the reason.
        Assert.Single(a.Lines, l => l.Contains("Pair: datagram-refused", StringComparison.Ordinal));
        Assert.Contains(a.Lines, l => l.Contains("Pair: datagram-refused: refused a datagram on link lan from 10.216.2.254", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Datagrams_with_the_peers_own_address_forged_replayed_or_truncated_change_nothing_and_are_counted_by_reason()
    {
        var (a, b) = await StartAnsweringPairAsync();
        var key = await File.ReadAllBytesAsync(Path.Combine(_rig.Directory, "cluster.key"), TestContext.Current.CancellationToken);

        // From the client's namespace, raw IPv4 packets whose source is node2's LAN address and port: past the source
        // check, so what stops them is the HMAC, the replay window and the length. node2 "claims" to be active with a
        // generation far ahead: with a wrong key; with the pair's key but its first boot's first sequence (long seen);
        // cut short.
        var header = new AppHb.Cluster.Wire.PeerHeader(77, 2, 1, 1, 1);
        var claim = new AppHb.Cluster.Wire.PeerHeartbeat(header, AppHb.Core.Cluster.ClusterRole.Active, 1, true, true, [],
            [new AppHb.Core.Cluster.DataGeneration(1_000_000, 2)], 0);
        var forged = AppHb.Cluster.Wire.PeerCodec.Encode(claim with { Header = header with { Sequence = ulong.MaxValue / 2 } }, "not the pair's key, not at all!!"u8);
        var replayed = AppHb.Cluster.Wire.PeerCodec.Encode(claim, key);
        var truncated = replayed[..12];
        await _gateway.Run(() =>
        {
            using var raw = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Raw, System.Net.Sockets.ProtocolType.Udp);
            raw.SetSocketOption(System.Net.Sockets.SocketOptionLevel.IP, System.Net.Sockets.SocketOptionName.HeaderIncluded, true);
            var node1 = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.216.2.1"), 0);
            for (var i = 0; i < 10; i++)
            {
                foreach (var payload in new[] { forged, replayed, truncated })
                {
                    raw.SendTo(SpoofedUdp(System.Net.IPAddress.Parse("10.216.2.2"), node1.Address, 7408, payload), node1);
                }
            }

            return 0;
        });

        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        var pair = (await new AppHbControl(a.SocketPath).GetStatusAsync()).Cluster!;
        Assert.Equal(("active", "standby", false), (pair.Role, pair.PeerRole, pair.SplitBrain));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
        Assert.False(await _rig.HoldsServiceIpAsync(2), Story(a, b));
        var refused = string.Join('\n', (await _rig.ScrapeAsync(1)).Split('\n').Where(l => l.Contains("datagrams_refused", StringComparison.Ordinal)));
        foreach (var reason in new[] { "forged", "replayed", "truncated" })
        {
            Assert.True(refused.Contains($"apphb_cluster_datagrams_refused_total{{reason=\"{reason}\"}} 10", StringComparison.Ordinal), refused);
        }

        Assert.Contains("apphb_cluster_datagrams_refused_total{reason=\"wrongnode\"} 0", refused, StringComparison.Ordinal);
        // node2's real heartbeats still count: both links stay up.
        Assert.All(pair.Links, l => Assert.Equal("up", l.State));
    }

    /// <summary>An IPv4 UDP packet for a raw socket with IP_HDRINCL, from an address that is not this host's (the
    /// kernel fills in the length, id and header checksum; a UDP checksum of 0 means none).</summary>
    private static byte[] SpoofedUdp(System.Net.IPAddress source, System.Net.IPAddress destination, int port, byte[] payload)
    {
        var packet = new byte[28 + payload.Length];
        packet[0] = 0x45;
        packet[6] = 0x40;
        packet[8] = 64;
        packet[9] = 17;
        source.GetAddressBytes().CopyTo(packet, 12);
        destination.GetAddressBytes().CopyTo(packet, 16);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), (ushort)port);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), (ushort)port);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), (ushort)(8 + payload.Length));
        payload.CopyTo(packet, 28);
        return packet;
    }

    [Fact]
    public async Task A_takeover_reaches_a_real_snmptrapd_as_fenced_takeover_and_link_down_notifications_and_the_MIB_shows_it()
    {
        const string Enterprise = ".1.3.6.1.4.1.32473";
        await using var snmp = await NetSnmp.StartAsync();
        // Only node2 is snmpd's subagent (one agent per MIB); it reaches the AgentX socket from its namespace.
        var a = await StartAsync(1);
        var b = await _rig.StartAsync(2, $"snmp:\n  agentx: {snmp.AgentX}\n" + _rig.Config(2, "command: [/bin/sleep, \"1000\"]"));
        await b.WaitForLineAsync("SNMP: registered", TimeSpan.FromSeconds(30));
        Assert.True(await UntilAsync(async () => await AppStateAsync(a) == "running"), Story(a, b));

        Assert.True(ProcessRunner.Signal(a.Pid, 9));

        var fenced = await snmp.WaitForTrapAsync(Bound, $"= OID: {Enterprise}.0.7");
        Assert.Contains($"{Enterprise}.1.6.2.0 = STRING: \"node1\"", fenced, StringComparison.Ordinal);
        Assert.Contains("fence_apphb_netns", fenced, StringComparison.Ordinal);
        var takeover = await snmp.WaitForTrapAsync(Bound, $"= OID: {Enterprise}.0.6");
        Assert.Contains($"{Enterprise}.1.6.1.0 = STRING: \"node2\"", takeover, StringComparison.Ordinal);
        Assert.Contains("the peer is fenced", takeover, StringComparison.Ordinal);
        // The fenced node's links fall silent after the fence: each link's death is a notification naming it.
        var cross = await snmp.WaitForTrapAsync(Bound, $"= OID: {Enterprise}.0.9", $"{Enterprise}.1.5.2.0 = STRING: \"cross\"");
        Assert.Contains("dead", cross, StringComparison.Ordinal);
        await snmp.WaitForTrapAsync(Bound, $"= OID: {Enterprise}.0.9", $"{Enterprise}.1.5.2.0 = STRING: \"lan\"");

        // The MIB says what happened: node2 active (4), one takeover, the fence in apphbClusterLastFence.
        var values = await snmp.ToolAsync("snmpget", [.. NetSnmp.V2c, "-Oqv"], "APPHB-MIB::apphbClusterRole.0", "APPHB-MIB::apphbClusterTakeovers.0", "APPHB-MIB::apphbClusterLastFence.0");
        var lines = values.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToArray();
        Assert.True(lines.Length == 3 && lines[0] is "active" or "4" && lines[1] == "1" && lines[2].Contains("fence_apphb_netns", StringComparison.Ordinal), values);
    }

    [Fact]
    public async Task A_node_that_boots_alone_waits_initdead_then_fences_its_peer_before_it_becomes_active()
    {
        var a = await _rig.StartAsync(1, _rig.Config(1, _rig.Answering(1), initdead: "4s"));
        // Before initdead: not active, nothing held, nothing fenced.
        await Task.Delay(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);
        var pair = (await new AppHbControl(a.SocketPath).GetStatusAsync()).Cluster!;
        Assert.Equal(("starting", null), (pair.Role, pair.PeerRole));
        Assert.False(await _rig.HoldsServiceIpAsync(1));

        Assert.True(await UntilAsync(async () => await _rig.AnswerOnServiceIpAsync() == "node1"), string.Join('\n', a.Lines));
        var lines = a.Lines.ToList();
        var initdead = lines.FindIndex(l => l.Contains("Pair: initdead:", StringComparison.Ordinal));
        var fenced = lines.FindIndex(l => l.Contains("Pair: fenced:", StringComparison.Ordinal));
        var tookOver = lines.FindIndex(l => l.Contains("Pair: takeover:", StringComparison.Ordinal));
        Assert.True(initdead >= 0 && fenced > initdead && tookOver > fenced, string.Join('\n', lines));

        // The peer, powered on again after its fence and started, finds it active and stands by.
        await _rig.PowerOnAsync(2);
        var b = await _rig.StartAsync(2, _rig.Config(2, _rig.Answering(2), initdead: "4s"));
        Assert.True(await UntilAsync(async () => (await new AppHbControl(b.SocketPath).GetStatusAsync()).Cluster is { Role: "standby", PeerRole: "active" }),
            Story(a, b));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
    }

    [Fact]
    public async Task A_flapping_LAN_never_makes_the_roles_flap()
    {
        var (a, b) = await StartAnsweringPairAsync();

        // The LAN between the nodes dies (1.5 s, past deadtime) and comes back for 0.5 s, four times: a link back from
        // the dead counts only after its hold time, and a LAN fault where both still reach the gateway moves nothing.
        for (var i = 0; i < 4; i++)
        {
            await _rig.CutLanBetweenAsync(true);
            await Task.Delay(TimeSpan.FromMilliseconds(1500), TestContext.Current.CancellationToken);
            await _rig.CutLanBetweenAsync(false);
            await Task.Delay(TimeSpan.FromMilliseconds(500), TestContext.Current.CancellationToken);
        }

        Assert.Contains(b.Lines, l => l.Contains("Pair: link-returning: link lan", StringComparison.Ordinal));
        Assert.Equal("node1", await _rig.AnswerOnServiceIpAsync());
        Assert.DoesNotContain(a.Lines.Concat(b.Lines), l => l.Contains("Pair: switchover", StringComparison.Ordinal)
            || l.Contains("Pair: fencing", StringComparison.Ordinal) || l.Contains("Pair: step-down", StringComparison.Ordinal));
        Assert.Single(b.Lines, l => l.Contains("Pair: takeover", StringComparison.Ordinal) || l.Contains("Pair: standby:", StringComparison.Ordinal));
    }
}
