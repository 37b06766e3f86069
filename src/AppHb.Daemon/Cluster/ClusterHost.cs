using AppHb.Cluster.Hosting;
using AppHb.Core.Cluster;
using AppHb.Core.Events;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Services;
using Microsoft.Extensions.Hosting;
using AppHb.Protocol;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Cluster;

/// <summary>Runs this node's side of the pair (level 3, apphbd.yaml's <c>cluster:</c>): a <see cref="PairHost"/> whose
/// group is the supervisor's pair group, whose last resort stops feeding the watchdog, and whose events are logged.
/// Started after the supervisor (the group exists, inactive) and stopped before it.</summary>
/// <remarks>Registered on every node (apphbctl's pair commands and the status ask it); hosted only with a cluster
/// section, and otherwise answers that this node is not part of a pair.</remarks>
internal sealed class ClusterHost(ApphbdOptions options, ServiceSupervisor supervisor, WatchdogTickler tickler, EventStream events, TimeProvider time,
    ILogger<ClusterHost> logger) : IHostedService, IAsyncDisposable
{
    private const string NotPaired = "this node is not part of a pair: apphbd.yaml has no cluster section";
    private volatile PairHost? _host;

    public ClusterRole? Role => _host?.Role;

    /// <summary>Raised once the pair is open, before it starts deciding: replication, which starts before the pair
    /// and stops after it (an orderly stop's hand-over drains replication first), attaches here.</summary>
    public event Action<PairHost>? Opened;

    /// <summary>The running pair, for the metrics exporter; null on a single node or before it started.</summary>
    public PairHost? Pair => _host;

    /// <summary>This node's side of the pair for the status document; null on a single node or before it started.</summary>
    public ClusterStatus? Status()
    {
        if (_host is not { Status: { } status } host || options.Cluster is not { } cluster)
        {
            return null;
        }

        var now = time.GetTimestamp();
        var fence = host.LastFence;
        var peerGeneration = status.PeerGenerations.Count > 0 ? status.PeerGenerations[0].ToString() : null;
        return new ClusterStatus(cluster.Node, cluster.Peer, cluster.Preferred, ClusterRoles.Name(status.Role), status.PeerRole is { } peer ? ClusterRoles.Name(peer) : null,
            status.Verdict, status.Generations[0].ToString(), peerGeneration, status.InSync,
            status.SplitBrain, status.Stale, status.StandbyMode, status.PeerFenced, status.GroupRunning, cluster.Group,
            [.. cluster.ServiceIps.Select(ip => $"{ip.Address}/{ip.PrefixLength} on {ip.Interface}")], [.. cluster.PingTargets.Select(t => t.ToString())],
            status.ReachesPingTargets, status.PeerReachesPingTargets,
            [.. status.Links.Select(l =>
            {
                var link = cluster.Links.First(c => c.Name == l.Name);
                return new ClusterLinkStatus(l.Name, l.Kind.ToString().ToLowerInvariant(), link.Interface, $"{link.Peer}:{link.Port}",
                    l.State.ToString().ToLowerInvariant(), l.LastHeard is { } heard ? Math.Round(time.GetElapsedTime(heard, now).TotalMilliseconds, 1) : null);
            })],
            fence is null ? null : new ClusterFenceStatus(fence.At, fence.Method, fence.Confirmed, fence.Detail), host.Takeovers, host.Refused);
    }


    /// <summary>`apphbctl switchover` (and `failback`): asks, then waits until the group runs on the other node, at
    /// most the hand-over bound.</summary>
    /// <exception cref="InvalidOperationException">Refused, with the reason; or not a pair.</exception>
    /// <summary>Asked before a controlled hand-over from the active node (switchover, failback, standby): a reason to
    /// refuse it (replication in sync mode whose peer does not confirm the data), or null. Set by replication.</summary>
    public Func<CancellationToken, Task<string?>>? HandOverCheck { get; set; }

    /// <summary>Awaited before the group starts on this node (it becomes active): replication's "the replica is
    /// no longer being written" (a cut acknowledged to the peer may still be carried out into it). Set by
    /// replication; at most <see cref="GroupStartPatience"/>, then the group starts anyway, said by an event.</summary>
    public Func<CancellationToken, Task>? BeforeGroupStart { get; set; }

    /// <summary>How long the group's start waits for <see cref="BeforeGroupStart"/>: far beyond a cut's steps (a
    /// merged cut is at most 64 MiB), so only a fault reaches it.</summary>
    public static readonly TimeSpan GroupStartPatience = TimeSpan.FromSeconds(30);

    private async Task RefuseUnlessReadyAsync(PairHost host, string what, CancellationToken cancellationToken)
    {
        if (host.Role == ClusterRole.Active && HandOverCheck is { } check && await check(cancellationToken) is { } refusal)
        {
            throw new InvalidOperationException($"{what} refused: {refusal}");
        }
    }

    public async Task<ControlResultDocument> SwitchoverAsync(bool failback, CancellationToken cancellationToken)
    {
        var host = Running();
        await RefuseUnlessReadyAsync(host, failback ? "failback" : "switchover", cancellationToken);
        var before = host.Role;
        if (await (failback ? host.FailbackAsync() : host.SwitchoverAsync()) is { } refusal)
        {
            throw new InvalidOperationException($"{(failback ? "failback" : "switchover")} refused: {refusal}");
        }

        var handedOff = before == ClusterRole.Active;
        var done = await WaitAsync(host, () => handedOff
            ? host.Role == ClusterRole.Standby && host.PeerRole == ClusterRole.Active
            : host.Role == ClusterRole.Active && host.Status?.GroupRunning == true, cancellationToken);
        var peer = options.Cluster!.Peer;
        var node = options.Cluster.Node;
        return new ControlResultDocument(done
            ? $"the group runs on {(handedOff ? peer : node)}"
            : $"under way, not complete after {HandOverBound(options).TotalSeconds:0.#} s: this node is {ClusterRoles.Name(host.Role)}, {peer} {(host.PeerRole is { } r ? ClusterRoles.Name(r) : "unheard")}", []);
    }

    /// <summary>`apphbctl standby` / `unstandby`; standby on the active node waits until the group is handed over.</summary>
    public async Task<ControlResultDocument> StandbyAsync(bool on, CancellationToken cancellationToken)
    {
        var host = Running();
        if (on)
        {
            await RefuseUnlessReadyAsync(host, "standby", cancellationToken);
        }

        var wasActive = host.Role == ClusterRole.Active;
        if (await host.StandbyAsync(on) is { } refusal)
        {
            throw new InvalidOperationException($"{(on ? "standby" : "unstandby")} refused: {refusal}");
        }

        if (!on)
        {
            return new ControlResultDocument("this node may become active again", []);
        }

        if (wasActive && !await WaitAsync(host, () => host.Role == ClusterRole.Standby, cancellationToken))
        {
            return new ControlResultDocument($"standby: handing the group over, not complete after {HandOverBound(options).TotalSeconds:0.#} s", []);
        }

        return new ControlResultDocument($"this node is standby and stays so until `apphbctl unstandby`{(wasActive ? "; the group was handed to the peer" : "")}", []);
    }

    /// <summary>`apphbctl cluster resolve --survivor NODE`.</summary>
    public async Task<ControlResultDocument> ResolveAsync(string survivor, CancellationToken cancellationToken)
    {
        var host = Running();
        var cluster = options.Cluster!;
        if (survivor != cluster.Node && survivor != cluster.Peer)
        {
            throw new InvalidOperationException($"resolve refused: no node named \"{survivor}\" in this pair ({cluster.Node}, {cluster.Peer})");
        }

        if (await host.ResolveAsync(survivor == cluster.Node, cancellationToken) is { } refusal)
        {
            throw new InvalidOperationException($"resolve refused: {refusal}");
        }

        return new ControlResultDocument(survivor == cluster.Node
            ? $"split brain resolved: {survivor}'s data survives; {cluster.Peer} takes its generations"
            : $"split brain resolved: {survivor}'s data survives; this node took its generations and stays standby", []);
    }

    private PairHost Running() => _host ?? throw new InvalidOperationException(options.Cluster is null ? NotPaired : "the pair is not running (apphbd is starting or stopping)");

    /// <summary>Until <paramref name="done"/>, at most the hand-over bound; false too when the pair stops meanwhile.</summary>
    private async Task<bool> WaitAsync(PairHost host, Func<bool> done, CancellationToken cancellationToken) =>
        await host.UntilAsync(() => _host != host || done(), HandOverBound(options), cancellationToken) && _host == host;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var cluster = options.Cluster ?? throw new InvalidOperationException("no cluster section");
        byte[] key;
        try
        {
            key = File.ReadAllBytes(cluster.KeyFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cluster.key-file: {cluster.KeyFile}: {e.Message}", e);
        }

        var node = new PairNodeOptions(cluster.ClusterId, cluster.NodeId, cluster.PeerId, cluster.Preferred, cluster.Timings, cluster.Links,
            cluster.PingTargets, cluster.ServiceIps, cluster.Fence, cluster.StateFile, ReplicatesData: options.Replication is not null,
            FenceAgentDirectory: cluster.FenceAgentDirectory);
        _host = PairHost.Open(node, key, new GatedPairGroup(new SupervisedGroup(supervisor), () => BeforeGroupStart, GroupStartPatience, time,
            why => events.Publish(new PairEvent(new ClusterEvent("group-start-unwaited", $"starting the group without waiting for the replica any longer: {why}")) { At = time.GetUtcNow() })), reason =>
        {
            Log.ClusterStopsFeeding(logger, reason);
            tickler.StopFeeding(reason);
        }, e => events.Publish(new PairEvent(e) { At = time.GetUtcNow() }), time);
        // The pair's threads stay at normal priority: with them realtime, a fresh-clone CI run saw a starting apphbd
        // stall for a second (its tickle loop 793 ms late, nothing from its pair) and its peer fenced it; not yet
        // understood, so not shipped.
        Log.ClusterStarting(logger, cluster.Node, cluster.NodeId, cluster.Peer, cluster.PeerId, string.Join(", ", cluster.Links));
        var host = _host;
        supervisor.FailoverRequested = async (service, reason) =>
        {
            // A service whose escalation is failover gave up here: the group goes to the peer, if it can take it.
            var refusal = await host.SwitchoverAsync();
            Log.ClusterFailover(logger, service, reason, refusal ?? "handing the group to the peer");
        };
        Opened?.Invoke(_host);
        _host.Start();
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_host is { } host)
        {
            _host = null;
            supervisor.FailoverRequested = null;
            // Stopping on purpose: the active node hands the group over rather than make its peer fence it.
            if (await host.HandOverAsync(HandOverBound(options), cancellationToken))
            {
                Log.ClusterHandedOver(logger);
            }

            // Holding nothing now: the peer is told, so that it does not fence this node for going silent.
            if (await host.LeaveAsync(cancellationToken))
            {
                Log.ClusterLeft(logger);
            }

            await host.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None);

    /// <summary>How long an orderly stop may spend handing the group over: each group service's stop timeout, then
    /// deadtime for the peer to take it (zero on a single node). apphbd's stop budget includes it.</summary>
    public static TimeSpan HandOverBound(ApphbdOptions options) => options.Cluster is { } cluster
        ? options.Services.Where(s => cluster.Group.Contains(s.Name)).Aggregate(cluster.Timings.DeadTime, (sum, s) => sum + s.StopTimeout)
        : TimeSpan.Zero;

    /// <summary>The pair's group as the supervisor runs it: the services of <c>cluster.group</c>.</summary>
    private sealed class SupervisedGroup(ServiceSupervisor supervisor) : IPairGroup
    {
        public bool IsRunning => supervisor.IsGroupRunning(ServiceDefinition.PairGroup);

        public void Start() => supervisor.SetGroupActive(ServiceDefinition.PairGroup, active: true);

        public Task StopAsync(CancellationToken cancellationToken)
        {
            supervisor.SetGroupActive(ServiceDefinition.PairGroup, active: false);
            return supervisor.WhenGroupStoppedAsync(ServiceDefinition.PairGroup, cancellationToken);
        }
    }
}
