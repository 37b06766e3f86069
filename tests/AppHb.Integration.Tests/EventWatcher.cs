using System.Collections.Concurrent;
using System.Diagnostics;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>Watches the daemon's event stream over the real socket and timestamps each event on arrival.</summary>
internal sealed class EventWatcher : IAsyncDisposable
{
    private readonly ConcurrentQueue<(EventDocument Event, long ArrivedAt)> _events = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly TaskCompletionSource _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private EventWatcher(RawConnection connection)
    {
        _loop = Task.Run(async () =>
        {
            try
            {
                while (!_stop.IsCancellationRequested && await connection.ReceiveAsync(Timeout.InfiniteTimeSpan, _stop.Token) is { } frame)
                {
                    switch (frame.Header.Type)
                    {
                        case FrameType.Ok:
                            _subscribed.TrySetResult();
                            break;
                        case FrameType.Event:
                            _events.Enqueue((ProtocolJsonContext.ReadEvent(frame.Payload), Stopwatch.GetTimestamp()));
                            break;
                        default:
                            _subscribed.TrySetException(new InvalidOperationException($"unexpected {frame.Header.Type} frame on the event stream"));
                            return;
                    }
                }

                _subscribed.TrySetException(new InvalidOperationException("apphbd closed the event stream"));
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                await connection.DisposeAsync();
            }
        });
    }

    /// <summary>Subscribes and returns once apphbd's Ok arrived: from then on, no event it publishes is missed.</summary>
    /// <param name="includeHistory">Also the daemon's recent events: for what may happen before the test subscribes
    /// (a service that gives up during apphbd's own start).</param>
    public static async Task<EventWatcher> StartAsync(string socketPath, bool includeHistory = false)
    {
        var connection = await RawConnection.ConnectAsync(socketPath);
        await connection.SendAsync(FrameWriter.EmptyToArray(FrameType.Subscribe, 1, includeHistory ? FrameFlags.ReplayHistory : FrameFlags.None));
        var watcher = new EventWatcher(connection);
        await watcher._subscribed.Task.WaitAsync(TimeSpan.FromSeconds(30));
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
