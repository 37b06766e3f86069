namespace AppHb.Core.Limits;

/// <summary>How many descriptors the process holds and may hold, as counted at one moment.</summary>
/// <param name="Open">Descriptors open (the one being decided on included).</param>
/// <param name="Limit">RLIMIT_NOFILE's soft limit.</param>
public readonly record struct DescriptorCount(int Open, ulong Limit);

/// <summary>Decides whether one more client connection may be held, so that clients never take the daemon's last
/// descriptors: the runtime needs some of its own (a thread it starts opens a pipe; a CI run saw apphbd die with "Out
/// of memory." when a thread pool thread met EMFILE while a flood held every descriptor), and so do a status request, a
/// service's restart and a check. <see cref="Headroom"/> descriptors are kept free of clients.
/// <para>Counting the process's descriptors reads a directory, so it is done only near the ceiling, at most once per
/// <see cref="RecountInterval"/>: between counts the open figure is estimated from the connections taken since (a
/// connection holds its socket and, once it registers, a pidfd: <see cref="PerConnection"/>) and given back
/// (at least one each), and the count is taken again when it is <see cref="StaleAfter"/> old. What the daemon opens
/// itself between counts can still pass the ceiling (into the headroom); the limit itself is the connection loop's
/// reserve's to handle. Not thread-safe: the connection loop's thread asks.</para></summary>
public sealed class DescriptorBudget
{
    /// <summary>Descriptors a client connection may hold: its socket, and its process's pidfd once it registers.</summary>
    public const int PerConnection = 2;

    public static readonly TimeSpan RecountInterval = TimeSpan.FromSeconds(1);

    /// <summary>A count older than this is taken again even far below the ceiling: the daemon's own descriptors (a
    /// service started, a check running) are not in the estimate.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(10);

    private readonly Func<DescriptorCount?> _count;
    private readonly TimeProvider _time;
    private DescriptorCount _counted;
    private int _connectionsAtCount;
    private long _countedAt;

    /// <param name="count">Counts the process's descriptors now; null when it cannot (itself out of descriptors).</param>
    public DescriptorBudget(Func<DescriptorCount?> count, TimeProvider time, int connections = 0)
    {
        _count = count ?? throw new ArgumentNullException(nameof(count));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _counted = count() ?? new DescriptorCount(0, 1024);
        _connectionsAtCount = connections;
        _countedAt = time.GetTimestamp();
    }

    /// <summary>Descriptors kept free of clients under <paramref name="limit"/>: a sixteenth, 32 to 256.</summary>
    public static int Headroom(ulong limit) => (int)Math.Clamp(limit / 16, 32, 256);

    /// <summary>The descriptor limit at the last count.</summary>
    public ulong Limit => _counted.Limit;

    /// <summary>The open descriptors estimated with <paramref name="connections"/> held now.</summary>
    public long EstimatedOpen(int connections)
    {
        var taken = connections - _connectionsAtCount;
        return _counted.Open + (taken > 0 ? (long)taken * PerConnection : taken);
    }

    /// <summary>Whether <paramref name="connections"/> leave half the headroom free again beyond the ceiling, by the last
    /// count: the end of a refusal episode (ending it at the ceiling itself would end and begin it again with every
    /// connection that closes and the next that comes).</summary>
    public bool Comfortable(int connections) =>
        EstimatedOpen(connections) + PerConnection <= Ceiling(_counted) - (Headroom(_counted.Limit) / 2);

    /// <summary>Descriptors clients may bring the process to under <paramref name="count"/>'s limit.</summary>
    private static long Ceiling(DescriptorCount count) => (long)Math.Min(count.Limit, int.MaxValue) - Headroom(count.Limit);

    /// <summary>Whether a new connection (already accepted, its socket counted by the next count) may be held while
    /// <paramref name="connections"/> others are.</summary>
    public bool MayHold(int connections)
    {
        var age = _time.GetElapsedTime(_countedAt);
        // Far below the ceiling, a recent estimate is enough (a count per accept would cost more than the accept).
        if (EstimatedOpen(connections) + PerConnection <= Ceiling(_counted) - Headroom(_counted.Limit) && age < StaleAfter)
        {
            return true;
        }

        if (age >= RecountInterval)
        {
            _countedAt = _time.GetTimestamp();
            if (_count() is not { } now)
            {
                // The count itself found no descriptor free: certainly not.
                return false;
            }

            _counted = now with { Open = now.Open - 1 };
            _connectionsAtCount = connections;
        }

        return EstimatedOpen(connections) + PerConnection <= Ceiling(_counted);
    }
}
