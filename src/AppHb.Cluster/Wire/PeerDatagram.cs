using AppHb.Core.Cluster;

namespace AppHb.Cluster.Wire;

/// <summary>The kinds of datagram two apphbd of a pair exchange (docs/peer-protocol.md).</summary>
public enum PeerDatagramType : byte
{
    Heartbeat = 1,
    Request = 2,
    Reply = 3,
}

/// <summary>What a request asks of the peer.</summary>
public enum PeerRequestKind : byte
{
    /// <summary>Release the group to the sender (failback, a pull switchover).</summary>
    Release = 1,
    /// <summary>The sender has released the group: take over.</summary>
    Released = 2,
    /// <summary>Fence yourself over this link: stop the group, remove the service IP, set the LAN interface down, and
    /// confirm (the documents' "bring the peer's LAN interface down before taking its IP").</summary>
    FenceOverLink = 3,
    /// <summary>The sender's apphbd is stopping on purpose and holds nothing (it handed the group over, or never had
    /// it): its silence from now on is not a failure to fence.</summary>
    Leaving = 4,
    /// <summary>The operator resolved a split brain for the sender's data (`apphbctl cluster resolve --survivor
    /// SENDER`): take the sender's generations; this node's diverged data is kept aside, never deleted.</summary>
    ResolvedForSender = 5,
}

/// <summary>How a link looks from the sender's side, as it reports it to the peer.</summary>
public readonly record struct HeardLink(byte Link, LinkState State, ushort AgeMs);

/// <summary>The fields every datagram carries before its body.</summary>
/// <param name="ClusterId">The pair's id: a datagram of another pair is refused before anything else.</param>
/// <param name="Sender">The sending node's id.</param>
/// <param name="Receiver">The node it is meant for.</param>
/// <param name="BootEpoch">The sender's boot counter, persisted and raised at every start: with the sequence, never
/// reused across restarts.</param>
/// <param name="Sequence">Per boot epoch, from 1, raised for every datagram on every link.</param>
public readonly record struct PeerHeader(uint ClusterId, ushort Sender, ushort Receiver, ulong BootEpoch, ulong Sequence);

/// <summary>A decoded datagram: its header and one of the three bodies.</summary>
public abstract record PeerDatagram(PeerHeader Header)
{
    public abstract PeerDatagramType Type { get; }
}

/// <summary>Sent every keepalive on every link.</summary>
/// <param name="Link">The index (in the configuration's order) of the link it was sent on.</param>
/// <param name="ReplicationPosition">How far the sender's replication stands (the replication issue fills it); 0: none.</param>
/// <param name="HeardEpoch">The receiver's boot epoch as the sender last accepted it (0: never). <see cref="Heard"/>
/// speaks of that boot of the receiver only: a heartbeat a kernel held back (for a neighbour it could not resolve)
/// and delivered after the receiver restarted says how an earlier boot was heard, and must not be read as hearing
/// this one.</param>
public sealed record PeerHeartbeat(PeerHeader Header, ClusterRole Role, byte Link, bool ReachesPingTargets, bool GroupRunning,
    IReadOnlyList<HeardLink> Heard, IReadOnlyList<DataGeneration> Generations, ulong ReplicationPosition, bool HeldStandby = false,
    ulong HeardEpoch = 0) : PeerDatagram(Header)
{
    public override PeerDatagramType Type => PeerDatagramType.Heartbeat;

    /// <summary>Whether the sender says it hears the receiver, in the receiver's boot <paramref name="receiverEpoch"/>,
    /// on one of the links <paramref name="counts"/> names (up or late).</summary>
    public bool HearsReceiverOn(ulong receiverEpoch, Func<byte, bool> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        return HeardEpoch == receiverEpoch && Heard.Any(h => counts(h.Link) && h.State is LinkState.Up or LinkState.Late);
    }
}

/// <summary>A request that needs an answer; retried with the same id until answered or timed out.</summary>
/// <param name="ReceiverEpoch">The receiver's boot epoch as the sender last accepted it when it decided to ask: the
/// request is meant for that boot of the receiver only. A receiver that restarted since refuses it unacted: a release
/// retried (or held back by a kernel) into the peer's next boot once made it take a group its sender had taken back
/// (the partition checker's trial 252).</param>
public sealed record PeerRequest(PeerHeader Header, ulong Id, PeerRequestKind Kind, ulong ReceiverEpoch, string Reason) : PeerDatagram(Header)
{
    public override PeerDatagramType Type => PeerDatagramType.Request;
}

/// <summary>The answer to the request with the same id.</summary>
public sealed record PeerReply(PeerHeader Header, ulong Id, bool Done, string Message) : PeerDatagram(Header)
{
    public override PeerDatagramType Type => PeerDatagramType.Reply;
}
