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

    /// <summary>The paths that may differ for a replica at <paramref name="applied"/> of <paramref name="generation"/>
    /// (the dirty set recorded while apart), or null: compare the whole tree.</summary>
    Task<IReadOnlyList<string>?> DirtySinceAsync(AppHb.Core.Cluster.DataGeneration generation, ulong applied, CancellationToken cancellationToken);

    /// <summary>Adopts <paramref name="peerHas"/> as what the peer has at <paramref name="dirty"/> (each path with
    /// everything under it; null: the whole tree, and what the peer has anywhere else is forgotten), journals what
    /// differs there closed by a cut (one even when nothing differs: the replica then stands at a position the journal
    /// continues), and returns the first record's sequence and the cut's. With <paramref name="dirty"/>, it may
    /// instead journal nothing and return the paths changed after <paramref name="applied"/> that it does not cover
    /// (Missing: the replica is asked for them too), or neither (the dirty set no longer says: compare the whole
    /// tree). With a null <paramref name="dirty"/>, Done is always set.</summary>
    Task<((ulong First, ulong Cut)? Done, IReadOnlyList<string> Missing)> ResyncAsync(IReadOnlyList<ManifestEntry> peerHas, IReadOnlyCollection<string>? dirty, ulong applied, CancellationToken cancellationToken);

    /// <summary>A record of the journal on disk is damaged (the sender reports where, as the reason its connection
    /// ended): its records from there on can never be sent. The journal is started again (in order with the batches,
    /// by the one that writes it), and the replica, which can no longer be continued, is resynced by its next
    /// connection.</summary>
    void JournalDamaged();
}
