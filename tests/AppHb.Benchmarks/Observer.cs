using System.Collections.Concurrent;
using System.Diagnostics;
using AppHb.Linux.Realtime;

namespace AppHb.Benchmarks;

/// <summary>A dedicated SCHED_FIFO thread (above both daemons' priorities) that blocks on one source and
/// timestamps each message on arrival with the monotonic clock hbload also uses. With the other core saturated the
/// observer must not be the thing that is late.</summary>
internal sealed class Observer : IDisposable
{
    private readonly ConcurrentQueue<(long At, string Message)> _messages = new();
    private readonly Thread _thread;
    private readonly Func<string?> _receive;
    private readonly Action _close;
    private volatile bool _stopping;

    public Observer(string name, Func<string?> receive, Action close)
    {
        _receive = receive;
        _close = close;
        _thread = new Thread(Run) { Name = name, IsBackground = true };
        _thread.Start();
    }

    public IReadOnlyCollection<(long At, string Message)> Messages => _messages;

    public string Scheduling { get; private set; } = "?";

    private void Run()
    {
        var outcome = RealtimeScheduling.ApplyToCurrentThread(RealtimePolicy.Fifo, 80);
        Scheduling = outcome.Applied ? outcome.Description : "SCHED_OTHER (" + outcome.Description + ")";
        while (!_stopping)
        {
            string? message;
            try
            {
                message = _receive();
            }
            catch (Exception) when (_stopping)
            {
                return;
            }

            if (message is null)
            {
                return;
            }

            _messages.Enqueue((Stopwatch.GetTimestamp(), message));
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _close();
        _thread.Join(TimeSpan.FromSeconds(2));
    }
}
