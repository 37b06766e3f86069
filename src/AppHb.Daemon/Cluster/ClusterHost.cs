using AppHb.Cluster.Hosting;
using AppHb.Core.Cluster;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Services;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Cluster;

/// <summary>Runs this node's side of the pair (level 3, apphbd.yaml's <c>cluster:</c>): a <see cref="PairHost"/> whose
/// group is the supervisor's pair group, whose last resort stops feeding the watchdog, and whose events are logged.
/// Started after the supervisor (the group exists, inactive) and stopped before it.</summary>
internal sealed class ClusterHost(ApphbdOptions options, ServiceSupervisor supervisor, WatchdogTickler tickler, TimeProvider time,
    ILogger<ClusterHost> logger) : IHostedService, IAsyncDisposable
{
    private PairHost? _host;

    public ClusterRole? Role => _host?.Role;

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
            cluster.PingTargets, cluster.ServiceIps, cluster.Fence, cluster.StateFile, FenceAgentDirectory: cluster.FenceAgentDirectory);
        _host = PairHost.Open(node, key, new SupervisedGroup(supervisor), reason =>
        {
            Log.ClusterStopsFeeding(logger, reason);
            tickler.StopFeeding(reason);
        }, e => Log.ClusterEvent(logger, e.Kind, e.Message), time);
        Log.ClusterStarting(logger, cluster.Node, cluster.NodeId, cluster.Peer, cluster.PeerId, string.Join(", ", cluster.Links));
        var host = _host;
        supervisor.FailoverRequested = async (service, reason) =>
        {
            // A service whose escalation is failover gave up here: the group goes to the peer, if it can take it.
            var refusal = await host.SwitchoverAsync();
            Log.ClusterFailover(logger, service, reason, refusal ?? "handing the group to the peer");
        };
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
