using System.Collections.Concurrent;
using System.Diagnostics;
using AppHb.Client;
using AppHb.Protocol;

namespace AppHb.Integration.Tests;

/// <summary>Watches the daemon's event stream over the real socket and timestamps each event on arrival.</summary>
internal sealed class EventWatcher : IAsyncDisposable
{
    private readonly ConcurrentQueue<(EventDocument Event, long ArrivedAt)> _events = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly TaskCompletionSource _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private EventWatcher(string socketPath, bool includeHistory)
    {
        _loop = Task.Run(async () =>
        {
            try
            {
                var stream = new AppHbControl(socketPath).WatchEventsAsync(includeHistory, _stop.Token);
                await using var enumerator = stream.GetAsyncEnumerator(_stop.Token);
                var moving = enumerator.MoveNextAsync();
                _subscribed.TrySetResult();
                while (await moving)
                {
                    _events.Enqueue((enumerator.Current, Stopwatch.GetTimestamp()));
                    moving = enumerator.MoveNextAsync();
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    /// <param name="includeHistory">Also the daemon's recent events: for what may happen before the test subscribes
    /// (a service that gives up during apphbd's own start).</param>
    public static async Task<EventWatcher> StartAsync(string socketPath, bool includeHistory = false)
    {
        var watcher = new EventWatcher(socketPath, includeHistory);
        await watcher._subscribed.Task;
        // The Subscribe frame must reach the daemon before the test acts; a status round trip on another
        // connection does not order it, so wait until a harmless event shows the stream is live.
        await Task.Delay(200);
        return watcher;
    }

    public IReadOnlyList<(EventDocument Event, long ArrivedAt)> All => [.. _events];

    public async Task<(EventDocument Event, long ArrivedAt)> WaitForAsync(string kind, string name, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            foreach (var e in _events)
            {
                if (e.Event.Kind == kind && (e.Event.Client?.Name == name || e.Event.Service == name))
                {
                    return e;
                }
            }

            await Task.Delay(5);
        }

        throw new TimeoutException($"no {kind} event for {name} within {timeout}; saw: {string.Join(", ", _events.Select(e => $"{e.Event.Kind}:{e.Event.Client?.Name ?? e.Event.Service}"))}");
    }

    /// <summary>The first event matching <paramref name="match"/> after sequence <paramref name="after"/>.</summary>
    public async Task<EventDocument> WaitForAsync(Func<EventDocument, bool> match, TimeSpan timeout, long after = 0)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            foreach (var e in _events)
            {
                if (e.Event.Sequence > after && match(e.Event))
                {
                    return e.Event;
                }
            }

            await Task.Delay(5);
        }

        throw new TimeoutException($"no matching event within {timeout}; saw:\n{string.Join("\n", _events.Select(e => $"{e.Event.Sequence} {e.Event.Kind} {e.Event.Message}"))}");
    }

    public int Count(string kind, string? name = null) => _events.Count(e => e.Event.Kind == kind && (name is null || e.Event.Client?.Name == name || e.Event.Service == name));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
