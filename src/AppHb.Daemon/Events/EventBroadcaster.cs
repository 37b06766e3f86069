using System.Net.Sockets;
using AppHb.Core.Events;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Status;
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
    private readonly EventSubscription _subscription;
    private readonly Lock _gate = new();
    private readonly List<Watcher> _watchers = [];

    public EventBroadcaster(EventStream events, ApphbdOptions options, ILogger<EventBroadcaster> logger)
    {
        _events = events;
        _realtime = options.Realtime;
        _logger = logger;
        _subscription = events.Subscribe();
    }

    private const int BacklogFrames = 4096;
    private static readonly TimeSpan BacklogRetry = TimeSpan.FromMilliseconds(5);

    private sealed class Watcher(Socket socket, int pid)
    {
        public Socket Socket { get; } = socket;
        public int Pid { get; } = pid;
        /// <summary>Frames not yet written; the head may be partly written (<see cref="HeadOffset"/>).</summary>
        public Queue<byte[]> Pending { get; } = new();
        public int HeadOffset { get; set; }
        public long Dropped { get; set; }
    }

    /// <summary>Adds a watcher. It first receives <paramref name="ok"/> (the Subscribe's reply), then with
    /// <paramref name="replayHistory"/> the retained recent events (those already broadcast), then every event
    /// published from now on: history and live events join without a gap or a duplicate, and a watcher that has read
    /// the Ok knows it misses nothing published after it.</summary>
    public void Add(Socket socket, int pid, bool replayHistory, byte[] ok)
    {
        // Synchronous sends on this socket must fail fast instead of waiting for a slow reader; the connection's
        // asynchronous receives are not affected by this flag.
        socket.Blocking = false;
        var watcher = new Watcher(socket, pid);
        lock (_gate)
        {
            Send(watcher, ok);
            if (replayHistory)
            {
                foreach (var past in _events.History(upTo: _lastBroadcast))
                {
                    Send(watcher, Frame(past));
                }
            }

            _watchers.Add(watcher);
        }
    }

    public void Remove(Socket socket)
    {
        lock (_gate)
        {
            _watchers.RemoveAll(w => ReferenceEquals(w.Socket, socket));
        }
    }

    private long _lastBroadcast;

    protected override string ThreadName => "apphb-events";

    protected override void DisposeResources() => _subscription.Dispose();

    protected override void Run()
    {
        // One step below the deadline loop: events never delay deadline detection, but beat everything else.
        RealtimeThreads.Apply(_realtime with { Priority = Math.Max(1, _realtime.Priority - 1) }, _logger, "event broadcaster");
        var reader = _subscription.Reader;
        while (!IsStopping)
        {
            bool backlog;
            lock (_gate)
            {
                backlog = _watchers.Exists(w => w.Pending.Count > 0);
            }

            try
            {
                // A plain blocking wait, woken by the publishing thread itself: no thread-pool hop between the
                // deadline loop raising an event and this realtime thread writing it.
                _subscription.WaitToRead(backlog ? BacklogRetry : Timeout.InfiniteTimeSpan, Stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            lock (_gate)
            {
                while (reader.TryRead(out var appEvent))
                {
                    var frame = Frame(appEvent);
                    _lastBroadcast = appEvent.Sequence;
                    foreach (var watcher in _watchers)
                    {
                        Enqueue(watcher, frame);
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

    private void Send(Watcher watcher, byte[] frame)
    {
        Enqueue(watcher, frame);
        Flush(watcher);
    }

    private void Enqueue(Watcher watcher, byte[] frame)
    {
        if (watcher.Pending.Count >= BacklogFrames)
        {
            Drop(watcher);
            return;
        }

        watcher.Pending.Enqueue(frame);
    }

    /// <summary>Writes pending frames until the socket would block. Frames are never cut on the wire: a partly
    /// written head stays at the front with its offset.</summary>
    private static void Flush(Watcher watcher)
    {
        try
        {
            while (watcher.Pending.TryPeek(out var head))
            {
                var written = watcher.Socket.Send(head, watcher.HeadOffset, head.Length - watcher.HeadOffset, SocketFlags.None);
                watcher.HeadOffset += written;
                if (watcher.HeadOffset < head.Length)
                {
                    return;
                }

                watcher.Pending.Dequeue();
                watcher.HeadOffset = 0;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
        {
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The watcher went away; its connection's read loop removes it.
            watcher.Pending.Clear();
        }
    }

    private void Drop(Watcher watcher)
    {
        watcher.Dropped++;
        if (watcher.Dropped == 1 || watcher.Dropped % 1000 == 0)
        {
            Log.WatcherDropped(_logger, watcher.Pid, watcher.Dropped);
        }
    }
}
