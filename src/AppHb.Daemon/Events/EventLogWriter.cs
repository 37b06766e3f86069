using AppHb.Core.Events;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Events;

/// <summary>The first consumer of the event stream: every event becomes one journal line at a level that matches
/// its gravity. It runs on a thread of its own: a burst of thousands of events (a mass registration) would otherwise
/// hold a thread-pool worker for its whole length, and the pool's liveness probe, which the watchdog tickle depends
/// on, would wait behind it.</summary>
internal sealed class EventLogWriter : DedicatedThreadService
{
    private readonly EventSubscription _subscription;
    private readonly ILogger<EventLogWriter> _logger;

    public EventLogWriter(EventStream events, ILogger<EventLogWriter> logger)
    {
        // Subscribed at construction, before any listener starts, so that no event is ever missed.
        _subscription = events.Subscribe();
        _logger = logger;
    }

    protected override string ThreadName => "apphb-eventlog";

    /// <summary>Flush what was published before the stop: the last events are often the interesting ones.</summary>
    protected override void OnStopped() => Drain();

    protected override void DisposeResources() => _subscription.Dispose();

    protected override void Run()
    {
        try
        {
            while (true)
            {
                _subscription.WaitToRead(Timeout.InfiniteTimeSpan, Stopping);
                Drain();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Drain()
    {
        while (_subscription.Reader.TryRead(out var appEvent))
        {
            Write(appEvent);
        }
    }

    private void Write(AppHbEvent appEvent)
    {
        var line = appEvent.Describe();
        switch (appEvent)
        {
            case ClientEvent { ClientKind: ClientEventKind.Hung or ClientEventKind.Died }:
                Log.ClientError(_logger, line);
                break;
            case ServiceEvent { ServiceKind: ServiceEventKind.Reboot }:
                Log.NodeRebootEvent(_logger, line);
                break;
            case ServiceEvent { IsFailure: true }:
                Log.ServiceError(_logger, line);
                break;
            case ServiceEvent:
                Log.ServiceInfo(_logger, line);
                break;
            case PairEvent { IsFailure: true }:
                Log.ClusterError(_logger, appEvent.Kind, line);
                break;
            case PairEvent:
                Log.ClusterInfo(_logger, appEvent.Kind, line);
                break;
            case ClientEvent { ClientKind: ClientEventKind.Warn }:
                Log.ClientWarning(_logger, line);
                break;
            default:
                Log.ClientInfo(_logger, line);
                break;
        }
    }
}
