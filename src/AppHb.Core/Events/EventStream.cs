using System.Threading.Channels;

namespace AppHb.Core.Events;

/// <summary>The node's one typed event stream. Publishing never blocks: internal consumers (logging, supervisor)
/// subscribe unbounded, remote watchers (apphbctl events --follow) bounded so a stuck reader cannot grow the daemon's
/// memory; they lose the oldest events and are told how many.</summary>
public sealed class EventStream
{
    private readonly Lock _gate = new();
    private readonly List<EventSubscription> _subscribers = [];
    private readonly AppHbEvent[] _history;
    private long _sequence;

    public EventStream(int historyCapacity = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(historyCapacity, 1);
        _history = new AppHbEvent[historyCapacity];
    }

    /// <summary>Events published so far.</summary>
    public long Published => Volatile.Read(ref _sequence);

    /// <summary>Assigns the next sequence number and hands the event to every subscriber, in one order for all.</summary>
    public void Publish(AppHbEvent appEvent)
    {
        ArgumentNullException.ThrowIfNull(appEvent);
        lock (_gate)
        {
            appEvent.Sequence = ++_sequence;
            _history[(appEvent.Sequence - 1) % _history.Length] = appEvent;
            foreach (var subscriber in _subscribers)
            {
                subscriber.Offer(appEvent);
            }
        }
    }

    /// <summary>Subscribes to live events.</summary>
    /// <param name="capacity">null for unbounded (internal consumers only); otherwise the oldest events are dropped.</param>
    /// <param name="replayHistory">First deliver the retained recent events.</param>
    /// <param name="filter">Only the events it accepts are delivered: a consumer that wants one kind is not woken
    /// for every other (a publisher on the respawn path wakes no thread that has nothing to do).</param>
    public EventSubscription Subscribe(int? capacity = null, bool replayHistory = false, Func<AppHbEvent, bool>? filter = null)
    {
        lock (_gate)
        {
            var subscription = new EventSubscription(this, capacity, filter);
            if (replayHistory)
            {
                var count = Math.Min(_sequence, _history.Length);
                for (var seq = _sequence - count + 1; seq <= _sequence; seq++)
                {
                    subscription.Offer(_history[(seq - 1) % _history.Length]);
                }
            }

            _subscribers.Add(subscription);
            return subscription;
        }
    }

    /// <summary>Subscribes, and says which was the last event published before: everything after it is delivered,
    /// everything up to it is in <see cref="History"/> (what is still retained).</summary>
    public EventSubscription Subscribe(out long publishedBefore, int? capacity = null, Func<AppHbEvent, bool>? filter = null)
    {
        lock (_gate)
        {
            publishedBefore = _sequence;
            return Subscribe(capacity, replayHistory: false, filter);
        }
    }

    /// <summary>The retained recent events with a sequence number up to <paramref name="upTo"/>, oldest first.</summary>
    public IReadOnlyList<AppHbEvent> History(long upTo)
    {
        lock (_gate)
        {
            var list = new List<AppHbEvent>();
            var last = Math.Min(upTo, _sequence);
            for (var seq = Math.Max(1, _sequence - _history.Length + 1); seq <= last; seq++)
            {
                list.Add(_history[(seq - 1) % _history.Length]);
            }

            return list;
        }
    }

    internal void Remove(EventSubscription subscription)
    {
        lock (_gate)
        {
            _subscribers.Remove(subscription);
        }
    }
}

/// <summary>One consumer's view of the <see cref="EventStream"/>. Dispose to unsubscribe.</summary>
public sealed class EventSubscription : IDisposable
{
    private readonly EventStream _stream;
    private readonly Channel<AppHbEvent> _channel;
    // Set by the publisher's own thread on every offer, so a dedicated consumer thread can block on it without a
    // thread-pool hop (a channel completes async waiters through the pool, which a busy box delays).
    private readonly ManualResetEventSlim _available = new(false);
    private long _dropped;

    private readonly Func<AppHbEvent, bool>? _filter;

    internal EventSubscription(EventStream stream, int? capacity, Func<AppHbEvent, bool>? filter)
    {
        _stream = stream;
        _filter = filter;
        _channel = capacity is { } bound
            ? Channel.CreateBounded<AppHbEvent>(new BoundedChannelOptions(bound)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = true,
            }, _ => Interlocked.Increment(ref _dropped))
            : Channel.CreateUnbounded<AppHbEvent>(new UnboundedChannelOptions { SingleReader = true });
    }

    public ChannelReader<AppHbEvent> Reader => _channel.Reader;

    /// <summary>Events this subscriber lost because it read too slowly.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    internal void Offer(AppHbEvent appEvent)
    {
        if (_filter is not null && !_filter(appEvent))
        {
            return;
        }

        _channel.Writer.TryWrite(appEvent);
        _available.Set();
    }

    /// <summary>Blocks the calling thread until an event can be read or the timeout passes; for consumers that run
    /// on a dedicated thread.</summary>
    /// <returns>true when an event can be read.</returns>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public bool WaitToRead(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_channel.Reader.TryPeek(out _))
        {
            return true;
        }

        // Reset, then look again: an offer between the two sets the event after the reset, so the wait returns.
        _available.Reset();
        return _channel.Reader.TryPeek(out _) || (_available.Wait(timeout, cancellationToken) && _channel.Reader.TryPeek(out _));
    }

    public void Dispose()
    {
        _stream.Remove(this);
        _channel.Writer.TryComplete();
        _available.Set();
    }
}
