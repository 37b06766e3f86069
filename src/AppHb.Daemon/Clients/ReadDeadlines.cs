using AppHb.Core.Scheduling;

namespace AppHb.Daemon.Clients;

/// <summary>The read timeouts of every connection that holds part of a frame, in one deadline queue served by the
/// deadline loop: no timer per connection. A connection arms its deadline when a turn ends with a partial frame in its
/// buffer and disarms it (by bumping the version) when the frame completes; an entry that surfaces with a stale version
/// is skipped.</summary>
internal sealed class ReadDeadlines(TimeProvider time) : IDeadlineSource
{
    private readonly Lock _gate = new();
    private readonly DeadlineQueue<ClientConnection> _queue = new();
    private readonly Timestamps _timestamps = new(time);
    private long _armedAt = long.MaxValue;

    /// <inheritdoc/>
    public Action? EarlierDeadlineScheduled { get; set; }

    /// <summary>Connections closed for a read timeout so far.</summary>
    public long TimedOut => Interlocked.Read(ref _timedOut);

    private long _timedOut;

    public void Arm(ClientConnection connection, int version, TimeSpan timeout)
    {
        var due = time.GetTimestamp() + _timestamps.ToTicks(timeout);
        Action? wake = null;
        lock (_gate)
        {
            _queue.Schedule(connection, version, due);
            if (due < _armedAt)
            {
                _armedAt = due;
                wake = EarlierDeadlineScheduled;
            }
        }

        wake?.Invoke();
    }

    public long ExpireDue()
    {
        List<(ClientConnection, int)>? expired = null;
        long next;
        lock (_gate)
        {
            var now = time.GetTimestamp();
            while (_queue.TryDequeueDue(now, out var connection, out var version, out _))
            {
                (expired ??= []).Add((connection, version));
            }

            next = _armedAt = _queue.NextDue;
        }

        if (expired is not null)
        {
            foreach (var (connection, version) in expired)
            {
                if (connection.ReadTimedOut(version))
                {
                    Interlocked.Increment(ref _timedOut);
                }
            }
        }

        return next;
    }
}
