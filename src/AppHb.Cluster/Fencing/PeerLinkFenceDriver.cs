using AppHb.Cluster.Links;
using AppHb.Cluster.Wire;

namespace AppHb.Cluster.Fencing;

/// <summary>Fences by asking the peer itself, over the dedicated link, to stop its group, remove the service IP, set
/// its LAN interface down and confirm: the documents' "bring the peer's LAN interface down over the crossover cable
/// before taking its IP". It is only as good as the answer: valid while authenticated replies come back on that link,
/// and no reply within the method's timeout is a failed fence (a peer that cannot answer may still be running).</summary>
/// <param name="requester">The node's requester; this driver asks over the dedicated link(s) only: the LAN is the link
/// whose fault this fences.</param>
public sealed class PeerLinkFenceDriver(PeerRequester requester, TimeSpan timeout, TimeSpan retry) : FenceDriver
{
    public override string Description => "peer-link";

    public override async Task<FenceResult> FenceAsync(CancellationToken cancellationToken)
    {
        var reply = await requester.AskAsync(PeerRequestKind.FenceOverLink, "stop the group, remove the service IP, set the LAN interface down",
            timeout, retry, cancellationToken, Core.Cluster.LinkKind.Dedicated);
        return reply switch
        {
            null => new FenceResult(false, $"{Description}: no authenticated answer over the dedicated link within {timeout.TotalSeconds:0.###} s"),
            { Done: false } => new FenceResult(false, $"{Description}: the peer could not fence itself: {reply.Message}"),
            _ => new FenceResult(true, $"{Description}: the peer confirmed: {reply.Message}"),
        };
    }
}
