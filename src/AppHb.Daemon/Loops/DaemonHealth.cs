using AppHb.Core.Scheduling;

namespace AppHb.Daemon.Loops;

/// <summary>What the watchdog tickle loop needs to know before it feeds: the deadline loop ran recently, and the
/// thread pool (every socket's I/O) still runs work items. Also the lateness figures status reports.</summary>
internal sealed class DaemonHealth
{
    private int _probePending;

    public DaemonHealth(TimeProvider time)
    {
        Loop = new LoopLiveness(time);
        ThreadPool = new LoopLiveness(time);
    }

    public LoopLiveness Loop { get; }

    public LoopLiveness ThreadPool { get; }

    public LatenessRecorder LoopLateness { get; } = new();

    public LatenessRecorder TickleLateness { get; } = new();

    /// <summary>Each tickle's lateness, for the exporter's histogram (set once at start).</summary>
    public Action<TimeSpan>? TickleObserved { get; set; }

    public string LoopScheduling { get; set; } = "SCHED_OTHER";

    public string TickleScheduling { get; set; } = "SCHED_OTHER";

    public bool MemoryLocked { get; set; }

    /// <summary>The older of the two proofs of life.</summary>
    public TimeSpan Age => Loop.Age > ThreadPool.Age ? Loop.Age : ThreadPool.Age;

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
