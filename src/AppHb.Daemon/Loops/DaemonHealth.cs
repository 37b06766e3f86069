using AppHb.Core.Scheduling;

namespace AppHb.Daemon.Loops;

/// <summary>What the watchdog tickle loop needs to know before it feeds: the deadline loop ran recently, the thread
/// pool still runs work items, and the client loop (every client's beats) still turns. Also the lateness figures status
/// reports.</summary>
internal sealed class DaemonHealth
{
    private int _probePending;
    private int _clientProbePending;
    private Action<Action>? _clientLoopPost;
    private readonly Action _stampClientLoop;

    public DaemonHealth(TimeProvider time)
    {
        Loop = new LoopLiveness(time);
        ThreadPool = new LoopLiveness(time);
        var clientLoop = ClientLoop = new LoopLiveness(time);
        // One delegate for every probe: the deadline loop probes at each of its turns.
        _stampClientLoop = () =>
        {
            clientLoop.Stamp();
            Volatile.Write(ref _clientProbePending, 0);
        };
    }

    public LoopLiveness Loop { get; }

    public LoopLiveness ThreadPool { get; }

    /// <summary>The client loop's proof of life: stamped by a probe it runs between events.</summary>
    public LoopLiveness ClientLoop { get; }

    public LatenessRecorder LoopLateness { get; } = new();

    public LatenessRecorder TickleLateness { get; } = new();

    /// <summary>Each tickle's lateness, for the exporter's histogram (set once at start).</summary>
    public Action<TimeSpan>? TickleObserved { get; set; }

    public string LoopScheduling { get; set; } = "SCHED_OTHER";

    public string TickleScheduling { get; set; } = "SCHED_OTHER";

    public bool MemoryLocked { get; set; }

    /// <summary>The oldest of the proofs of life.</summary>
    public TimeSpan Age
    {
        get
        {
            var age = Loop.Age > ThreadPool.Age ? Loop.Age : ThreadPool.Age;
            return _clientLoopPost is not null && ClientLoop.Age > age ? ClientLoop.Age : age;
        }
    }

    /// <summary>The client loop is running: from here its probes count (before, and in a daemon without one, they
    /// do not).</summary>
    public void WatchClientLoop(Action<Action> post)
    {
        ClientLoop.Stamp();
        _clientLoopPost = post;
    }

    /// <summary>The client loop has stopped on purpose (apphbd is stopping): its age no longer counts.</summary>
    public void UnwatchClientLoop() => _clientLoopPost = null;

    /// <summary>Posts one probe at a time to the client loop; it stamps <see cref="ClientLoop"/> when the loop runs it.</summary>
    public void ProbeClientLoop()
    {
        if (_clientLoopPost is { } post && Interlocked.Exchange(ref _clientProbePending, 1) == 0)
        {
            post(_stampClientLoop);
        }
    }

    /// <summary>Queues one work item at a time that stamps <see cref="ThreadPool"/> when it runs.</summary>
    public void ProbeThreadPool()
    {
        if (Interlocked.Exchange(ref _probePending, 1) == 0)
        {
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(static health =>
            {
                health.ThreadPool.Stamp();
                Volatile.Write(ref health._probePending, 0);
            }, this, preferLocal: false);
        }
    }
}
