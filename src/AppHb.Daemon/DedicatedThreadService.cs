using Microsoft.Extensions.Hosting;

namespace AppHb.Daemon;

/// <summary>A hosted service that is one dedicated thread: the deadline loop, the tickle loop, the event broadcaster,
/// the event log. Their lifecycle is the same and easy to get wrong, so it lives here once:
/// <list type="bullet">
/// <item>an orderly stop (<see cref="StopAsync"/>) ends the thread, then runs <see cref="OnStopped"/> (disarm the
/// watchdog, drain the log);</item>
/// <item>disposal ends the thread without the orderly part: a daemon torn down without a stop must behave like a
/// crash (the watchdog stays armed);</item>
/// <item>both are idempotent: the container disposes a service registered both as itself and as a hosted service
/// twice, and the host may stop it more than once;</item>
/// <item>nothing the thread uses is released while it runs.</item>
/// </list></summary>
internal abstract class DedicatedThreadService : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private Thread? _thread;
    private int _threadEnded;
    private int _stopped;
    private int _disposed;

    /// <summary>The thread's name, as shown in /proc/PID/task/*/comm.</summary>
    protected abstract string ThreadName { get; }

    /// <summary>Cancelled when the service stops; valid until it is disposed.</summary>
    protected CancellationToken Stopping => _stopping.Token;

    protected bool IsStopping => _stopping.IsCancellationRequested;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        OnStarting();
        _thread = new Thread(Run) { Name = ThreadName, IsBackground = true };
        _thread.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            EndThread();
            OnStopped();
        }

        return Task.CompletedTask;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        EndThread();
        DisposeResources();
        _stopping.Dispose();
    }

    /// <summary>Before the thread starts; an exception here fails the daemon's start.</summary>
    protected virtual void OnStarting() { }

    /// <summary>The thread's body: return once <see cref="IsStopping"/> (or <see cref="Stopping"/> fires).</summary>
    protected abstract void Run();

    /// <summary>Makes the thread notice the stop if it sleeps on something other than <see cref="Stopping"/>.</summary>
    protected virtual void Wake() { }

    /// <summary>The orderly part of a stop, after the thread ended.</summary>
    protected virtual void OnStopped() { }

    /// <summary>Releases what the thread used, after it ended.</summary>
    protected virtual void DisposeResources() { }

    private void EndThread()
    {
        if (Interlocked.Exchange(ref _threadEnded, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();
        Wake();
        _thread?.Join();
    }
}
