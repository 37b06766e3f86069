namespace AppHb.Cluster.Wire;

/// <summary>Refuses authenticated datagrams already seen, the way IPsec's anti-replay window does (RFC 4303, 3.4.3):
/// per boot epoch, the highest sequence accepted and a bitmap of the 64 below it. Datagrams reordered between two links
/// are accepted once each; a later boot epoch starts a new window; an earlier one is refused.
/// <para>The last epoch seen is persisted by the host and given back at start, so that a restart of this node does
/// not reopen the window to datagrams of the peer's earlier boots.</para></summary>
public sealed class ReplayWindow(ulong lastEpochSeen = 0)
{
    public const int Width = 64;
    private ulong _epoch = lastEpochSeen;
    private ulong _highest;
    private ulong _seen;

    /// <summary>The peer's boot epoch this window follows.</summary>
    public ulong Epoch => _epoch;

    /// <summary>Whether (<paramref name="epoch"/>, <paramref name="sequence"/>) is new; if so it is recorded.</summary>
    public bool Accept(ulong epoch, ulong sequence)
    {
        if (sequence == 0 || epoch < _epoch)
        {
            return false;
        }

        if (epoch > _epoch)
        {
            _epoch = epoch;
            _highest = sequence;
            _seen = 1;
            return true;
        }

        if (sequence > _highest)
        {
            var shift = sequence - _highest;
            _seen = shift >= Width ? 1 : (_seen << (int)shift) | 1;
            _highest = sequence;
            return true;
        }

        var behind = _highest - sequence;
        if (behind >= Width)
        {
            return false;
        }

        var bit = 1UL << (int)behind;
        if ((_seen & bit) != 0)
        {
            return false;
        }

        _seen |= bit;
        return true;
    }
}
