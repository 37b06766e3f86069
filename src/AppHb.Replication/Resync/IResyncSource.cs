namespace AppHb.Replication.Resync;

/// <summary>What journals a difference resync on the active node (the capture's pump, in order with its other
/// batches): given what the replica holds, the records that turn it into the tree as it is now.</summary>
public interface IResyncSource
{
    /// <summary>The block size the replica's files are hashed in for the comparison.</summary>
    int BlockSize { get; }

    /// <summary>The generation the journal's records are made under now: a replica whose last cut is of another was
    /// following another journal (or this node before a role change), and is compared, never continued.</summary>
    AppHb.Core.Cluster.DataGeneration Generation { get; }

    /// <summary>Adopts <paramref name="peerHas"/> as what the peer has, journals what differs closed by a cut (one
    /// even when nothing differs: the replica then stands at a position the journal continues), and returns the first
    /// record's sequence and the cut's.</summary>
    Task<(ulong First, ulong Cut)> ResyncAsync(IReadOnlyList<ManifestEntry> peerHas, CancellationToken cancellationToken);

    /// <summary>A record of the journal on disk is damaged (the sender reports where, as the reason its connection
    /// ended): its records from there on can never be sent. The journal is started again (in order with the batches,
    /// by the one that writes it), and the replica, which can no longer be continued, is resynced by its next
    /// connection.</summary>
    void JournalDamaged();
}
