using AppHb.Core.Events;
using AppHb.Core.Scheduling;

namespace AppHb.Core.Heartbeats;

/// <summary>Every heartbeat client of the node and its deadlines.
/// <para>Each client has at most one entry in one <see cref="DeadlineQueue{T}"/>: the earliest moment it could become
/// warn or hung. A beat only moves <c>LastBeat</c> forward, which can only push that moment later, so beats never
/// touch the queue; when an entry surfaces, the real deadline is recomputed from <c>LastBeat</c> and the client is
/// either flagged or rescheduled. One driver (the daemon's event loop, or a test with a fake clock) calls
/// <see cref="ExpireDue"/> and sleeps until the returned timestamp: no timer or task per client.</para>
/// <para>Each warn / hung / recovered is raised once per episode, from the deadline, not when the next beat
/// arrives.</para></summary>
public sealed class HeartbeatRegistry : IDeadlineSource
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly Timestamps _timestamps;
    private readonly EventStream _events;
    private readonly int _maxClients;
    private readonly DeadlineQueue<RegisteredClient> _deadlines = new();
    private readonly Dictionary<(string Name, string Instance), RegisteredClient> _byName = [];
    private long _armedAt = long.MaxValue;
    private ulong _nextId;

    public HeartbeatRegistry(TimeProvider time, EventStream events, int maxClients = 100_000)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(events);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxClients, 1);
        _time = time;
        _timestamps = new Timestamps(time);
        _events = events;
        _maxClients = maxClients;
    }

    /// <summary>Called (under the registry's lock, so it must be quick) when a deadline earlier than the one the
    /// driver sleeps towards was scheduled: the driver must wake and recompute.</summary>
    public Action? EarlierDeadlineScheduled { get; set; }

    /// <summary>Entries in the deadline queue (for tests: at most one per client, none for a hung one).</summary>
    internal int QueuedDeadlines
    {
        get
        {
            lock (_gate)
            {
                return _deadlines.Count;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _byName.Count;
            }
        }
    }

    /// <summary>Set by the daemon: whether a beat from the client is already waiting to be read (queued on its socket,
    /// or read but not yet processed). Asked, under the registry's lock, only when a deadline has passed: a client that
    /// beat in time is never declared warn or hung because the daemon was slow to read it. The raise is deferred by
    /// <see cref="PendingBeatRecheck"/>, at most one interval past the deadline.</summary>
    public Func<RegisteredClient, bool>? PendingBeat { get; set; }

    /// <summary>How soon a deferred raise is looked at again.</summary>
    public TimeSpan PendingBeatRecheck { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Raises deferred so far because a beat was waiting to be read.</summary>
    public long DeferredRaises => Interlocked.Read(ref _deferredRaises);

    private long _deferredRaises;

    /// <exception cref="RegistryException">Name and instance taken, or the client limit reached.</exception>
    public RegisteredClient Register(ClientIdentity identity, HeartbeatTiming timing, object? owner = null)
    {
        ArgumentNullException.ThrowIfNull(identity);
        lock (_gate)
        {
            var key = (identity.Name, identity.Instance);
            if (_byName.TryGetValue(key, out var holder))
            {
                throw new RegistryException(RegistryRefusal.Conflict,
                    $"client {identity.Label} is already registered by pid {holder.Identity.Peer.Pid}; choose another instance or unregister it first");
            }

            if (_byName.Count >= _maxClients)
            {
                throw new RegistryException(RegistryRefusal.LimitReached,
                    $"the daemon already has its maximum of {_maxClients} clients (clients.max in the configuration)");
            }

            var now = _time.GetTimestamp();
            var client = new RegisteredClient(++_nextId, identity, timing, _timestamps.ToTicks(timing.Interval), _timestamps.ToTicks(timing.Warn), now, owner);
            _byName.Add(key, client);
            ScheduleNext(client);
            Publish(ClientEventKind.Registered, client, now);
            return client;
        }
    }

    /// <summary>Records a heartbeat. Ends a warn or hung episode with one <c>recovered</c> event.</summary>
    /// <exception cref="RegistryException">The client is no longer registered.</exception>
    public void Beat(RegisteredClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        lock (_gate)
        {
            EnsureRegistered(client);
            var now = _time.GetTimestamp();
            client.LastBeat = now;
            client.Beats++;
            if (client.State != ClientState.Healthy)
            {
                client.State = ClientState.Healthy;
                client.Version++;
                ScheduleNext(client);
                Publish(ClientEventKind.Recovered, client, now);
            }
        }
    }

    /// <summary>Changes a client's interval and warn time; deadlines move at once, earlier or later.</summary>
    public void ChangeTiming(RegisteredClient client, HeartbeatTiming timing)
    {
        ArgumentNullException.ThrowIfNull(client);
        lock (_gate)
        {
            EnsureRegistered(client);
            client.Timing = timing;
            client.IntervalTicks = _timestamps.ToTicks(timing.Interval);
            client.WarnTicks = _timestamps.ToTicks(timing.Warn);
            client.Version++;
            ScheduleNext(client);
        }
    }

    /// <summary>The client's current timing.</summary>
    public HeartbeatTiming TimingOf(RegisteredClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        lock (_gate)
        {
            return client.Timing;
        }
    }

    /// <summary>The client leaves cleanly.</summary>
    public void Unregister(RegisteredClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        lock (_gate)
        {
            EnsureRegistered(client);
            Remove(client);
            Publish(ClientEventKind.Unregistered, client, _time.GetTimestamp());
        }
    }

    /// <summary>The client's connection closed or its process ended. Raises <c>died</c> unless it had unregistered.</summary>
    /// <returns>true if the client was still registered (and so died).</returns>
    public bool Disconnect(RegisteredClient client, string reason)
    {
        ArgumentNullException.ThrowIfNull(client);
        lock (_gate)
        {
            if (client.Removed)
            {
                return false;
            }

            Remove(client);
            Publish(ClientEventKind.Died, client, _time.GetTimestamp(), reason: reason);
            return true;
        }
    }

    /// <summary>Raises every event whose deadline has passed, then returns the timestamp of the next deadline
    /// (<see cref="long.MaxValue"/> if none) for the driver to sleep until.</summary>
    public long ExpireDue()
    {
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            while (_deadlines.TryDequeueDue(now, out var client, out var version, out _))
            {
                if (client.Removed || version != client.Version)
                {
                    continue;
                }

                Evaluate(client, now);
            }

            _armedAt = _deadlines.NextDue;
            return _armedAt;
        }
    }

    /// <summary>Every client, ordered by id.</summary>
    public IReadOnlyList<ClientSnapshot> Snapshot()
    {
        List<ClientSnapshot> list;
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            list = new List<ClientSnapshot>(_byName.Count);
            foreach (var client in _byName.Values)
            {
                list.Add(SnapshotOf(client, now));
            }
        }

        // Sorted outside the lock: beats wait for the copy only, not for the order a status reader wants.
        list.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        return list;
    }

    /// <summary>Fills <paramref name="into"/> (cleared first) with every client's reading, in no particular order:
    /// for a reader that comes back periodically and keeps its list.</summary>
    public void Read(List<ClientReading> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        into.Clear();
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            foreach (var client in _byName.Values)
            {
                into.Add(new ClientReading(client.Id, client.Identity.Name, client.Identity.Instance,
                    client.Timing.Interval, _timestamps.ToTimeSpan(Math.Max(0, now - client.LastBeat)), client.State));
            }
        }
    }

    private void Evaluate(RegisteredClient client, long now)
    {
        var silent = now - client.LastBeat;
        var due = (client.State == ClientState.Healthy && client.WarnTicks > 0 && silent >= client.WarnTicks)
            || (client.State != ClientState.Hung && silent >= client.IntervalTicks);
        if (due && PendingBeat is { } pending && silent < 2 * client.IntervalTicks && pending(client))
        {
            Interlocked.Increment(ref _deferredRaises);
            _deadlines.Schedule(client, client.Version, now + _timestamps.ToTicks(PendingBeatRecheck));
            return;
        }

        if (client.State == ClientState.Healthy && client.WarnTicks > 0 && silent >= client.WarnTicks)
        {
            client.State = ClientState.Warn;
            Publish(ClientEventKind.Warn, client, now, late: _timestamps.ToTimeSpan(silent - client.WarnTicks));
        }

        if (client.State != ClientState.Hung && silent >= client.IntervalTicks)
        {
            client.State = ClientState.Hung;
            Publish(ClientEventKind.Hung, client, now, late: _timestamps.ToTimeSpan(silent - client.IntervalTicks));
        }

        ScheduleNext(client);
    }

    /// <summary>Pushes the client's next possible deadline. A hung client has none: only a beat changes its state.</summary>
    private void ScheduleNext(RegisteredClient client)
    {
        if (client.State == ClientState.Hung)
        {
            return;
        }

        var threshold = client.State == ClientState.Healthy && client.WarnTicks > 0 ? client.WarnTicks : client.IntervalTicks;
        var due = client.LastBeat + threshold;
        _deadlines.Schedule(client, client.Version, due);
        if (due < _armedAt)
        {
            _armedAt = due;
            EarlierDeadlineScheduled?.Invoke();
        }
    }

    private void Remove(RegisteredClient client)
    {
        client.Removed = true;
        _byName.Remove((client.Identity.Name, client.Identity.Instance));
        if (_byName.Count == 0)
        {
            // Stale entries of departed clients would otherwise linger until their deadlines surface.
            _deadlines.Clear();
        }
    }

    private static void EnsureRegistered(RegisteredClient client)
    {
        if (client.Removed)
        {
            throw new RegistryException(RegistryRefusal.NotRegistered, $"client {client.Identity.Label} is not registered");
        }
    }

    private void Publish(ClientEventKind kind, RegisteredClient client, long now, TimeSpan? late = null, string? reason = null) =>
        _events.Publish(new ClientEvent(kind, SnapshotOf(client, now), late, reason) { At = _time.GetUtcNow() });

    private ClientSnapshot SnapshotOf(RegisteredClient client, long now) => new(
        client.Id,
        client.Identity.Name,
        client.Identity.Instance,
        client.Identity.Peer.Pid,
        client.Identity.Peer.Uid,
        client.Identity.Peer.Gid,
        client.Timing.Interval,
        client.Timing.Warn,
        _timestamps.ToTimeSpan(Math.Max(0, now - client.LastBeat)),
        client.State,
        client.Beats);
}
