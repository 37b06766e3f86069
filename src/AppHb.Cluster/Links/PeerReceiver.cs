using System.Net;
using AppHb.Cluster.Wire;

namespace AppHb.Cluster.Links;

/// <summary>One link to the peer (apphbd.yaml(5), "cluster.links"): where this node sends and listens, and where the
/// peer does.</summary>
public sealed record ClusterLink(string Name, Core.Cluster.LinkKind Kind, string Interface, IPAddress Local, IPAddress Peer, int Port)
{
    public override string ToString() => $"{Name} ({Kind}, {Interface}, {Local} -> {Peer}:{Port})";
}

/// <summary>What this node needs to judge a datagram from its peer, shared by every link: the key, the pair's ids, and
/// one replay window (the peer numbers its datagrams once for all links, so a datagram seen on one link is a replay on
/// the other). Rejections are counted by reason for /metrics; none changes anything. Thread-safe: each link receives
/// on its own.</summary>
public sealed class PeerReceiver
{
    private readonly byte[] _key;
    private readonly uint _clusterId;
    private readonly ushort _peer;
    private readonly ushort _me;
    private readonly ReplayWindow _window;
    private readonly Lock _gate = new();
    private readonly long[] _rejected = new long[Enum.GetValues<PeerRejection>().Length];

    /// <param name="lastPeerEpoch">The peer's last boot epoch seen before this node restarted (persisted), so that
    /// datagrams of its earlier boots stay refused.</param>
    public PeerReceiver(ReadOnlySpan<byte> key, uint clusterId, ushort peer, ushort me, ulong lastPeerEpoch = 0)
    {
        _key = key.ToArray();
        _clusterId = clusterId;
        _peer = peer;
        _me = me;
        _window = new ReplayWindow(lastPeerEpoch);
    }

    /// <summary>The peer's boot epoch as last accepted (to persist).</summary>
    public ulong PeerEpoch
    {
        get
        {
            lock (_gate)
            {
                return _window.Epoch;
            }
        }
    }

    /// <summary>Datagrams refused so far for <paramref name="reason"/>.</summary>
    public long Rejected(PeerRejection reason) => Interlocked.Read(ref _rejected[(int)reason]);

    /// <summary>Judges one datagram that arrived on a link from <paramref name="source"/>: decoded and new, or the
    /// reason it is refused (and counted).</summary>
    public PeerRejection Accept(ReadOnlySpan<byte> bytes, IPAddress source, ClusterLink link, out PeerDatagram? datagram)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(link);
        datagram = null;
        var verdict = source.Equals(link.Peer)
            ? PeerCodec.TryDecode(bytes, _key, _clusterId, _peer, _me, out datagram)
            : PeerRejection.WrongNode;
        if (verdict == PeerRejection.None)
        {
            lock (_gate)
            {
                if (!_window.Accept(datagram!.Header.BootEpoch, datagram.Header.Sequence))
                {
                    verdict = PeerRejection.Replayed;
                }
            }
        }

        if (verdict != PeerRejection.None)
        {
            datagram = null;
            Interlocked.Increment(ref _rejected[(int)verdict]);
        }

        return verdict;
    }
}
