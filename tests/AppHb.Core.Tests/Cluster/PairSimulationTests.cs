using AppHb.Core.Cluster;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Core.Tests.Cluster;

/// <summary>Two <see cref="FailoverMachine"/>s wired together under one fake clock: heartbeats over two links that
/// the test cuts and heals, a fence that powers the other node off, hand-overs over the dedicated link. A checker
/// looks after every step: never two live nodes holding the service IP. The Core version of the partition checker
/// the namespace rig will run against real daemons.</summary>
public class PairSimulationTests
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan FenceLatency = TimeSpan.FromMilliseconds(400);

    [Fact]
    public void Both_links_cut_at_once_the_active_node_wins_the_fence_race_and_only_it_holds_the_ip()
    {
        var pair = new Pair();
        pair.Run(TimeSpan.FromSeconds(3));
        Assert.Equal((ClusterRole.Active, ClusterRole.Standby), (pair.A.Machine.Role, pair.B.Machine.Role));
        pair.Dedicated = pair.Lan = false;
        pair.Run(TimeSpan.FromSeconds(10));
        Assert.True(pair.A.On && !pair.B.On, pair.ToString());
        Assert.True(pair.A.HoldsIp);
        Assert.Equal(0, pair.Violations);
    }

    [Fact]
    public void The_active_powered_off_the_standby_fences_it_and_takes_over()
    {
        var pair = new Pair();
        pair.Run(TimeSpan.FromSeconds(3));
        pair.A.On = false;
        pair.Run(TimeSpan.FromSeconds(10));
        Assert.True(pair.B.Machine.Role == ClusterRole.Active && pair.B.HoldsIp, pair.ToString());
        Assert.Equal(0, pair.Violations);
    }

    [Fact]
    public void The_dedicated_link_cut_alone_moves_nothing()
    {
        var pair = new Pair();
        pair.Run(TimeSpan.FromSeconds(3));
        pair.Dedicated = false;
        pair.Run(TimeSpan.FromSeconds(10));
        Assert.Equal((ClusterRole.Active, ClusterRole.Standby), (pair.A.Machine.Role, pair.B.Machine.Role));
        Assert.True(pair.A.On && pair.B.On);
        Assert.Equal(0, pair.Violations);
    }

    /// <summary>Both nodes booted while the dedicated link is down (a crossover cable unplugged during maintenance,
    /// then both restarted): they hear each other over the LAN only, and one of them must serve; the election's
    /// announced generation makes it as safe over the LAN as over the dedicated link.</summary>
    [Fact]
    public void Two_nodes_that_hear_each_other_over_the_lan_only_elect_one_without_fencing()
    {
        var pair = new Pair { Dedicated = false };
        pair.Run(TimeSpan.FromSeconds(5));
        Assert.True((pair.A.Machine.Role, pair.B.Machine.Role) == (ClusterRole.Active, ClusterRole.Standby), pair.ToString());
        Assert.True(pair.A.HoldsIp && !pair.B.HoldsIp);
        Assert.True(pair.A.On && pair.B.On);

        // The link returns: nothing moves.
        pair.Dedicated = true;
        pair.Run(TimeSpan.FromSeconds(5));
        Assert.Equal((ClusterRole.Active, ClusterRole.Standby), (pair.A.Machine.Role, pair.B.Machine.Role));
        Assert.Equal(0, pair.Violations);
    }

    /// <summary>The partition checker's trial 822 on real daemons: the active node lost the LAN and handed the group
    /// over; the new active node was powered off the moment it took over; the old one fenced it and took the group
    /// back. Both had become active under generations the other never heard of, and the returning node found a split
    /// brain that only an operator could end. Here the new active node is powered off at every moment of its takeover
    /// in turn, then powered back on: it must come back merely behind, never diverged.</summary>
    [Fact]
    public void A_node_powered_off_at_any_moment_of_a_hand_over_comes_back_behind_never_diverged()
    {
        var takeoversCut = 0;
        for (var offset = 0; offset < 30; offset++)
        {
            var pair = new Pair();
            pair.Run(TimeSpan.FromSeconds(3));
            Assert.True(pair.A.Machine.Role == ClusterRole.Active, pair.ToString());
            pair.Lan = false;
            pair.A.Machine.PingTargets(false);
            pair.RunUntil(() => pair.B.Machine.Role is ClusterRole.TakingOver or ClusterRole.Active, TimeSpan.FromSeconds(10));
            Assert.True(pair.B.Machine.Role is ClusterRole.TakingOver or ClusterRole.Active, pair.ToString());
            pair.Run(Step * offset);
            takeoversCut += pair.B.HoldsIp ? 1 : 0;
            pair.B.On = false;
            // The LAN fault heals as the new active node dies (in trial 822 the checker restored the port).
            pair.Lan = true;
            pair.A.Machine.PingTargets(true);
            pair.Run(TimeSpan.FromSeconds(10));
            Assert.True(pair.A.HoldsIp, $"offset {offset}: the node that handed over did not take the group back\n{pair}");
            pair.PowerOn(pair.B);
            pair.Run(TimeSpan.FromSeconds(10));
            Assert.False(pair.A.Machine.IsSplitBrain || pair.B.Machine.IsSplitBrain,
                $"offset {offset}: split brain ({pair.A.Machine.Generations.Current} against {pair.B.Machine.Generations.Current})\n{pair}");
            Assert.True(pair.A.HoldsIp && !pair.B.HoldsIp, $"offset {offset}\n{pair}");
            Assert.Equal(0, pair.Violations);
        }

        // Some offsets cut the node after it held the group, not only while it was announcing.
        Assert.True(takeoversCut > 10, $"only {takeoversCut} of 30 offsets powered the node off after its takeover");
    }

    [Fact]
    public void A_thousand_random_fault_sequences_never_leave_two_nodes_holding_the_ip()
    {
        var random = new Random(20261130);
        var trials = 0;
        var failovers = 0;
        for (var trial = 0; trial < 1000; trial++)
        {
            var pair = new Pair();
            pair.Run(TimeSpan.FromSeconds(3));
            for (var fault = 0; fault < 6; fault++)
            {
                switch (random.Next(4))
                {
                    case 0:
                        pair.Dedicated = !pair.Dedicated;
                        break;
                    case 1:
                        pair.Lan = !pair.Lan;
                        break;
                    case 2:
                        (random.Next(2) == 0 ? pair.A : pair.B).On = false;
                        break;
                    default:
                        pair.Dedicated = pair.Lan = random.Next(2) == 0;
                        break;
                }

                pair.Run(TimeSpan.FromMilliseconds(random.Next(50, 4000)));
            }

            pair.Run(TimeSpan.FromSeconds(10));
            Assert.True(pair.Violations == 0, $"trial {trial}: {pair.Violations} step(s) with both nodes holding the IP\n{pair}");
            // Once the faults stop, the group runs somewhere a live node is (unless both were powered off).
            Assert.True(!(pair.A.On || pair.B.On) || pair.A.HoldsIp || pair.B.HoldsIp,
                $"trial {trial}: no live node holds the IP\n{pair}");
            failovers += pair.B.HoldsIp ? 1 : 0;
            trials++;
        }

        Assert.Equal(1000, trials);
        // The faults moved the group in many trials: the checker looked at real takeovers, not a quiet pair.
        Assert.True(failovers > 100, $"only {failovers} trials ended with the group moved");
    }

    private sealed class Node(string name, FailoverMachine machine)
    {
        public string Name { get; } = name;
        public FailoverMachine Machine { get; set; } = machine;
        /// <summary>The generations as last persisted: what the node boots with.</summary>
        public IReadOnlyList<DataGeneration> Persisted { get; set; } = [];
        public bool On { get; set; } = true;
        public bool HoldsIp { get; set; }
        public TimeSpan? FenceDoneAt { get; set; }
        public TimeSpan? GroupStopsAt { get; set; }
    }

    private sealed class Pair
    {
        private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 30, 0, 0, 0, TimeSpan.Zero));
        private readonly ClusterTimings _timings = ClusterTimings.Default with { InitDead = TimeSpan.FromSeconds(10) };
        private TimeSpan _now;
        private TimeSpan _nextBeat;

        public Pair()
        {
            A = new Node("a", new FailoverMachine(_clock, _timings, 1, preferred: true, _links, new GenerationHistory([])));
            B = new Node("b", new FailoverMachine(_clock, _timings, 2, preferred: false, _links, new GenerationHistory([])));
        }

        public Node A { get; }
        public Node B { get; }
        public bool Dedicated { get; set; } = true;
        public bool Lan { get; set; } = true;
        public int Violations { get; private set; }

        /// <summary>Every command, stamped, for a failure's message.</summary>
        public List<string> Log { get; } = [];

        public override string ToString() => string.Join('\n', Log.TakeLast(40));

        private Node Other(Node node) => node == A ? B : A;

        private readonly (string, LinkKind)[] _links = [("dedicated", LinkKind.Dedicated), ("lan", LinkKind.Lan)];

        /// <summary>Boots a powered-off node again, with the generations it had persisted.</summary>
        public void PowerOn(Node node)
        {
            node.Machine = new FailoverMachine(_clock, _timings, node == A ? (ushort)1 : (ushort)2, preferred: node == A, _links,
                new GenerationHistory(node.Persisted));
            node.On = true;
            node.FenceDoneAt = null;
            node.GroupStopsAt = null;
        }

        public void RunUntil(Func<bool> done, TimeSpan limit)
        {
            var end = _now + limit;
            while (!done() && _now < end)
            {
                Run(Step);
            }
        }

        /// <summary>One heartbeat from <paramref name="node"/> over the links that carry.</summary>
        private void Beat(Node node)
        {
            var other = Other(node);
            if (!node.On || !other.On)
            {
                return;
            }

            var report = new PeerReport(node.Machine.Role, [.. node.Machine.Generations.NewestFirst], true);
            if (Dedicated)
            {
                other.Machine.Heard("dedicated", report);
            }

            if (Lan)
            {
                other.Machine.Heard("lan", report);
            }

            // Replication over the dedicated link, modelled as synchronous: a standby that is behind has
            // caught up by the next heartbeat.
            if (Dedicated && other.Machine.IsStale)
            {
                other.Machine.CaughtUp(report.CurrentGeneration);
            }

            Drain(other);
        }

        public void Run(TimeSpan span)
        {
            var end = _now + span;
            while (_now < end)
            {
                _clock.Advance(Step);
                _now += Step;
                foreach (var node in new[] { A, B })
                {
                    if (!node.On)
                    {
                        node.HoldsIp = false;
                        continue;
                    }

                    if (node.FenceDoneAt is { } done && _now >= done)
                    {
                        node.FenceDoneAt = null;
                        // The fence device (a power switch or BMC on a network of its own) always answers a live
                        // fencer: the first fence to complete powers the other node off.
                        Other(node).On = false;
                        node.Machine.FenceCompleted(true, "simulated: powered off");
                    }

                    if (node.GroupStopsAt is { } stops && _now >= stops)
                    {
                        node.GroupStopsAt = null;
                        node.Machine.GroupStopped();
                    }

                    if (node.Machine.NextDue <= _clock.GetTimestamp())
                    {
                        node.Machine.ExpireDue();
                    }

                    Drain(node);
                }

                if (_now >= _nextBeat)
                {
                    _nextBeat = _now + _timings.Keepalive;
                    Beat(A);
                    Beat(B);
                }

                if (A.On && B.On && A.HoldsIp && B.HoldsIp)
                {
                    Violations++;
                }
            }
        }

        private void Drain(Node node)
        {
            while (node.Machine.TryTakeCommand(out var command))
            {
                Log.Add($"{_now.TotalMilliseconds:0} {node.Name}{(node.On ? string.Empty : " (off)")} {command}");
                if (!node.On)
                {
                    continue;
                }

                switch (command)
                {
                    case ClusterCommand.Fence:
                        node.FenceDoneAt = _now + FenceLatency;
                        break;
                    case ClusterCommand.AcquireServiceIp:
                        node.HoldsIp = true;
                        break;
                    case ClusterCommand.PersistGenerations persist:
                        node.Persisted = persist.NewestFirst;
                        break;
                    case ClusterCommand.SendHeartbeat:
                        Beat(node);
                        break;
                    case ClusterCommand.ReleaseServiceIp:
                        node.HoldsIp = false;
                        break;
                    case ClusterCommand.StopGroup:
                        node.GroupStopsAt = _now + TimeSpan.FromMilliseconds(100);
                        break;
                    case ClusterCommand.SendReleased when Dedicated && Other(node).On:
                        Other(node).Machine.PeerReleased();
                        Drain(Other(node));
                        break;
                    case ClusterCommand.AskRelease when Dedicated && Other(node).On:
                        Other(node).Machine.ReleaseRequested("simulated");
                        Drain(Other(node));
                        break;
                    case ClusterCommand.StopFeedingWatchdog:
                        node.On = false;
                        break;
                }
            }
        }
    }
}
