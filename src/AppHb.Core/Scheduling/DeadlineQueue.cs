namespace AppHb.Core.Scheduling;

/// <summary>Every deadline of the node in one min-heap keyed by monotonic timestamp.
/// Entries are never removed early: an owner that moves its deadline bumps its version and pushes a new entry, and
/// stale entries are skipped when they surface. That keeps rescheduling O(log n) without a handle-tracking heap, and
/// lets the hot path (a heartbeat that only pushes a deadline later) not touch the queue at all.</summary>
public sealed class DeadlineQueue<T>
{
    private readonly PriorityQueue<(T Item, int Version), long> _heap = new();

    public int Count => _heap.Count;

    public void Schedule(T item, int version, long due) => _heap.Enqueue((item, version), due);

    /// <summary>The earliest deadline, or <see cref="long.MaxValue"/> when nothing is scheduled.</summary>
    public long NextDue => _heap.TryPeek(out _, out var due) ? due : long.MaxValue;

    /// <summary>Removes and returns the earliest entry if it is due at <paramref name="now"/>.</summary>
    public bool TryDequeueDue(long now, out T item, out int version, out long due)
    {
        if (_heap.TryPeek(out var entry, out due) && due <= now)
        {
            _heap.Dequeue();
            (item, version) = entry;
            return true;
        }

        item = default!;
        version = 0;
        return false;
    }

    public void Clear() => _heap.Clear();
}
