using AppHb.Core.Events;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Status;
using AppHb.Linux.Sockets;
using AppHb.Protocol;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Events;

/// <summary>Sends every event to every remote watcher (apphbctl events --follow, exporters, the benchmark) from one
/// dedicated realtime thread: an event raised by the deadline loop reaches the wire without waiting for a thread-pool
/// thread, which a busy box can delay by a whole scheduler period. Each event is serialized once. Writes never block:
/// a watcher whose socket is full gets a bounded backlog, flushed as its socket drains; beyond that bound it loses
/// events (counted, logged), and the daemon loses no time.</summary>
internal sealed class EventBroadcaster : DedicatedThreadService
{
    private readonly EventStream _events;
    private readonly RealtimeOptions _realtime;
    private readonly ILogger<EventBroadcaster> _logger;
    private readonly Lock _gate = new();
    private readonly List<Watcher> _watchers = [];
    private readonly SemaphoreSlim _firstWatcher = new(0);
    // Subscribed only while someone watches: with no watcher, publishing (on the respawn path, among others) wakes
    // nothing here.
    private EventSubscription? _subscription;

    public EventBroadcaster(EventStream events, ApphbdOptions options, ILogger<EventBroadcaster> logger)
    {
        _events = events;
        _realtime = options.Realtime;
        _logger = logger;
    }

    private const int BacklogFrames = 4096;
    private static readonly TimeSpan BacklogRetry = TimeSpan.FromMilliseconds(5);

    private sealed class Watcher(ServedConnection connection, int pid)
    {
        public ServedConnection Connection { get; } = connection;
        public int Pid { get; } = pid;
        /// <summary>Frames not yet written; the head may be partly written (<see cref="HeadOffset"/>).</summary>
        public Queue<byte[]> Pending { get; } = new();
        public int HeadOffset { get; set; }
        public long Dropped { get; set; }
        /// <summary>Events dropped since the watcher was last told (an EventsLost frame goes before its next event).</summary>
        public long Unreported { get; set; }
        public long FirstUnreported { get; set; }
    }

    /// <summary>Adds a watcher. It first receives <paramref name="ok"/> (the Subscribe's reply), then with
    /// <paramref name="replayHistory"/> the retained recent events (those already broadcast), then every event
    /// published from now on: history and live events join without a gap or a duplicate, and a watcher that has read
    /// the Ok knows it misses nothing published after it.</summary>
    public void Add(ServedConnection connection, int pid, bool replayHistory, byte[] ok)
    {
        var watcher = new Watcher(connection, pid);
        lock (_gate)
        {
            if (_subscription is null)
            {
                // Everything published so far counts as broadcast: it is history for the watchers to come.
                _subscription = _events.Subscribe(out var publishedBefore);
                _lastBroadcast = publishedBefore;
                _firstWatcher.Release();
            }

            watcher.Pending.Enqueue(ok);
            Flush(watcher);
            if (replayHistory)
            {
                foreach (var past in _events.History(upTo: _lastBroadcast))
                {
                    Send(watcher, past.Sequence, Frame(past));
                }
            }

            _watchers.Add(watcher);
        }
    }

    /// <summary>Queues one last frame for every watcher (apphbd's ShuttingDown), behind what they have pending, and
    /// writes what their sockets take now.</summary>
    public void SendToAll(byte[] frame)
    {
        lock (_gate)
        {
            foreach (var watcher in _watchers)
            {
                watcher.Pending.Enqueue(frame);
                Flush(watcher);
            }
        }
    }

    public void Remove(ServedConnection connection)
    {
        lock (_gate)
        {
            _watchers.RemoveAll(w => ReferenceEquals(w.Connection, connection));
            if (_watchers.Count == 0 && _subscription is { } subscription)
            {
                _subscription = null;
                subscription.Dispose();
            }
        }
    }

    private long _lastBroadcast;

    protected override string ThreadName => "apphb-events";

    protected override void Wake() => _firstWatcher.Release();

    protected override void DisposeResources()
    {
        lock (_gate)
        {
            _subscription?.Dispose();
            _subscription = null;
        }

        _firstWatcher.Dispose();
    }

    protected override void Run()
    {
        // One step below the deadline loop: events never delay deadline detection, but beat everything else.
        RealtimeThreads.Apply(_realtime with { Priority = Math.Max(1, _realtime.Priority - 1) }, _logger, "event broadcaster");
        while (!IsStopping)
        {
            bool backlog;
            EventSubscription? subscription;
            lock (_gate)
            {
                backlog = _watchers.Exists(w => w.Pending.Count > 0);
                subscription = _subscription;
            }

            try
            {
                if (subscription is null)
                {
                    _firstWatcher.Wait(Stopping);
                    continue;
                }

                // A plain blocking wait, woken by the publishing thread itself: no thread-pool hop between the
                // deadline loop raising an event and this realtime thread writing it.
                subscription.WaitToRead(backlog ? BacklogRetry : Timeout.InfiniteTimeSpan, Stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            lock (_gate)
            {
                if (_subscription != subscription)
                {
                    // The last watcher left (and maybe a new one came) while this thread waited.
                    continue;
                }

                var reader = subscription.Reader;
                while (reader.TryRead(out var appEvent))
                {
                    var frame = Frame(appEvent);
                    _lastBroadcast = appEvent.Sequence;
                    foreach (var watcher in _watchers)
                    {
                        Enqueue(watcher, appEvent.Sequence, frame);
                    }
                }

                foreach (var watcher in _watchers)
                {
                    Flush(watcher);
                }
            }
        }
    }

    private static byte[] Frame(AppHbEvent appEvent) => FrameWriter.ToArrayRaw(FrameType.Event, 0, StatusReporter.SerializeEvent(appEvent));

    private void Send(Watcher watcher, long sequence, byte[] frame)
    {
        Enqueue(watcher, sequence, frame);
        Flush(watcher);
    }

    /// <summary>Queues an event for a watcher, or drops it when the watcher's backlog is full. Nothing is lost
    /// silently: the next event the watcher does get is preceded by an EventsLost frame naming what it missed.</summary>
    private void Enqueue(Watcher watcher, long sequence, byte[] frame)
    {
        // Room for the event, and for the EventsLost frame that may have to go first.
        if (watcher.Pending.Count >= BacklogFrames - 1)
        {
            Drop(watcher, sequence);
            return;
        }

        if (watcher.Unreported > 0)
        {
            watcher.Pending.Enqueue(FrameWriter.ToArray(new EventsLostReply(watcher.FirstUnreported, watcher.Unreported), 0));
            watcher.Unreported = 0;
        }

        watcher.Pending.Enqueue(frame);
    }

    /// <summary>Writes pending frames until the socket would block. Frames are never cut on the wire: a partly
    /// written head stays at the front with its offset.</summary>
    private static void Flush(Watcher watcher)
    {
        while (watcher.Pending.TryPeek(out var head))
        {
            var written = watcher.Connection.TrySend(head.AsSpan(watcher.HeadOffset));
            if (written < 0)
            {
                // The watcher went away; the connection loop sees its end and removes it.
                watcher.Pending.Clear();
                return;
            }

            watcher.HeadOffset += written;
            if (watcher.HeadOffset < head.Length)
            {
                return;
            }

            watcher.Pending.Dequeue();
            watcher.HeadOffset = 0;
        }
    }

    private void Drop(Watcher watcher, long sequence)
    {
        if (watcher.Unreported++ == 0)
        {
            watcher.FirstUnreported = sequence;
        }

        watcher.Dropped++;
        if (watcher.Dropped == 1 || watcher.Dropped % 1000 == 0)
        {
            Log.WatcherDropped(_logger, watcher.Pid, watcher.Dropped);
        }
    }
}
