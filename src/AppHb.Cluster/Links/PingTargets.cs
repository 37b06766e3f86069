using System.Net;
using System.Net.NetworkInformation;

namespace AppHb.Cluster.Links;

/// <summary>Tells a LAN fault from a dead peer (apphbd.yaml(5), "cluster.ping"): this node reaches the LAN when any of
/// its ping targets (the gateway, a switch) answers an ICMP echo within the timeout. Asked of both nodes when the LAN
/// link to the peer is dead and the dedicated one alive: the node that still reaches the targets is the one that
/// should serve.</summary>
public sealed class PingTargets
{
    private readonly IReadOnlyList<IPAddress> _targets;
    private readonly TimeSpan _timeout;
    private readonly byte[] _payload = "apphbd LAN check"u8.ToArray();

    public PingTargets(IReadOnlyList<IPAddress> targets, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _targets = targets;
        _timeout = timeout;
    }

    /// <summary>Whether any target answered; all are asked at once, and the first answer decides. No target, no
    /// answer within the timeout, or no route to any: false.</summary>
    public async Task<bool> AnyReachableAsync(CancellationToken cancellationToken)
    {
        if (_targets.Count == 0)
        {
            return false;
        }

        using var answered = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pings = _targets.Select(target => ReachableAsync(target, answered.Token)).ToList();
        while (pings.Count > 0)
        {
            var done = await Task.WhenAny(pings);
            pings.Remove(done);
            if (await done)
            {
                // The others need not finish: one answer is enough.
                await answered.CancelAsync();
                return true;
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    private async Task<bool> ReachableAsync(IPAddress target, CancellationToken cancellationToken)
    {
        using var ping = new Ping();
        try
        {
            var reply = await ping.SendPingAsync(target, _timeout, _payload, new PingOptions(ttl: 64, dontFragment: true), cancellationToken);
            return reply.Status == IPStatus.Success;
        }
        catch (Exception e) when (e is PingException or OperationCanceledException)
        {
            return false;
        }
    }
}
