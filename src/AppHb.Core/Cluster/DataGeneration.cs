namespace AppHb.Core.Cluster;

/// <summary>One generation of the pair's data (DRBD's "data generation" idea): a new one starts every time a node
/// becomes active, stamped with a number one above the last it knew and the id of the node that started it, so two
/// nodes that became active apart never produce the same generation even with the same number.</summary>
public readonly record struct DataGeneration(ulong Number, ushort Node)
{
    /// <summary>No data yet: a node that was never active nor synced.</summary>
    public static readonly DataGeneration None = new(0, 0);

    public override string ToString() => $"{Number}@{Node}";
}

/// <summary>How this node's data stands against the peer's.</summary>
public enum GenerationRelation
{
    /// <summary>Same generation: neither was active without the other since they last agreed.</summary>
    Same,
    /// <summary>The peer's history holds this node's current generation: the peer went on from it; this node must
    /// catch up before it may become active.</summary>
    PeerNewer,
    /// <summary>This node went on from the peer's current generation: the peer must catch up.</summary>
    PeerOlder,
    /// <summary>Neither history holds the other's current: both were active apart (split brain), or the histories are
    /// too short to tell, which is treated the same way. Nothing moves until an operator resolves it.</summary>
    Diverged,
}

/// <summary>A node's current generation and the ones before it, newest first, bounded. Persisted (with fsync) on every
/// change by the host; compared with the peer's on every heartbeat.</summary>
public sealed class GenerationHistory
{
    /// <summary>Generations kept: a node that missed more takeovers than this while away is judged diverged, the safe
    /// verdict.</summary>
    public const int Capacity = 8;

    private readonly List<DataGeneration> _generations;

    public GenerationHistory(IEnumerable<DataGeneration> newestFirst)
    {
        ArgumentNullException.ThrowIfNull(newestFirst);
        _generations = [.. newestFirst.Take(Capacity)];
        if (_generations.Count == 0)
        {
            _generations.Add(DataGeneration.None);
        }
    }

    public DataGeneration Current => _generations[0];

    public IReadOnlyList<DataGeneration> NewestFirst => _generations;

    public bool Contains(DataGeneration generation) => _generations.Contains(generation);

    /// <summary>Starts the next generation, as <paramref name="node"/> becomes active.</summary>
    public DataGeneration Advance(ushort node, DataGeneration peerCurrent)
    {
        var next = new DataGeneration(Math.Max(Current.Number, peerCurrent.Number) + 1, node);
        _generations.Insert(0, next);
        if (_generations.Count > Capacity)
        {
            _generations.RemoveAt(_generations.Count - 1);
        }

        return next;
    }

    /// <summary>Takes the peer's history as this node's own: after a resync brought this node up to the peer's data,
    /// or after an operator chose the peer as the survivor of a split brain.</summary>
    public void Adopt(IReadOnlyList<DataGeneration> peerNewestFirst)
    {
        ArgumentNullException.ThrowIfNull(peerNewestFirst);
        _generations.Clear();
        _generations.AddRange(peerNewestFirst.Take(Capacity));
        if (_generations.Count == 0)
        {
            _generations.Add(DataGeneration.None);
        }
    }

    /// <summary>This node's data against the peer's history.</summary>
    public GenerationRelation CompareWith(IReadOnlyList<DataGeneration> peerNewestFirst)
    {
        ArgumentNullException.ThrowIfNull(peerNewestFirst);
        if (peerNewestFirst.Count == 0)
        {
            return GenerationRelation.Diverged;
        }

        var peerCurrent = peerNewestFirst[0];
        if (peerCurrent == Current)
        {
            return GenerationRelation.Same;
        }

        // A node that never held data (a new standby) is behind any peer that has some, however long its history.
        if (Current == DataGeneration.None || peerNewestFirst.Contains(Current))
        {
            return GenerationRelation.PeerNewer;
        }

        return peerCurrent == DataGeneration.None || _generations.Contains(peerCurrent)
            ? GenerationRelation.PeerOlder
            : GenerationRelation.Diverged;
    }
}
