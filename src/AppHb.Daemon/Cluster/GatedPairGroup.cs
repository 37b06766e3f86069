using AppHb.Cluster.Hosting;

namespace AppHb.Daemon.Cluster;

/// <summary>The pair's group, started only once something that must finish first has (replication's replica side
/// stopped: a cut acknowledged to the peer may still be finishing in the directory the group is about to write).
/// The pair's loop must not block, so a start that has to wait is carried out later, and only if no stop (or later
/// start) came meanwhile; a wait longer than <paramref name="patience"/> is given up, said through
/// <paramref name="unwaited"/>, and the group started.</summary>
/// <param name="before">What to wait for, asked at each start; null: nothing, the group starts at once.</param>
internal sealed class GatedPairGroup(IPairGroup group, Func<Func<CancellationToken, Task>?> before, TimeSpan patience, TimeProvider time,
    Action<string> unwaited) : IPairGroup
{
    private readonly Lock _gate = new();
    /// <summary>Counts starts and stops: a start that waited is carried out only if nothing came after it.</summary>
    private long _asked;

    public bool IsRunning => group.IsRunning;

    public void Start()
    {
        long ticket;
        var wait = before();
        lock (_gate)
        {
            ticket = ++_asked;
            if (wait is null)
            {
                group.Start();
                return;
            }
        }

        _ = StartAfterAsync(wait, ticket);
    }

    private async Task StartAfterAsync(Func<CancellationToken, Task> wait, long ticket)
    {
        try
        {
            await wait(CancellationToken.None).WaitAsync(patience, time);
        }
        catch (Exception e) when (e is TimeoutException or IOException or InvalidOperationException)
        {
            unwaited(e is TimeoutException ? $"still not done after {patience.TotalSeconds:0} s" : e.Message);
        }

        lock (_gate)
        {
            // A stop (or a later start) since this one was asked: the role changed while it waited.
            if (_asked == ticket)
            {
                group.Start();
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Task stopped;
        lock (_gate)
        {
            _asked++;
            stopped = group.StopAsync(cancellationToken);
        }

        return stopped;
    }
}
