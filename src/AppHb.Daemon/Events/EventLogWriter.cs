using AppHb.Core.Events;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Events;

/// <summary>The first consumer of the event stream: every event becomes one journal line at a level that matches
/// its gravity.</summary>
internal sealed class EventLogWriter : BackgroundService
{
    private readonly EventSubscription _subscription;
    private readonly ILogger<EventLogWriter> _logger;

    public EventLogWriter(EventStream events, ILogger<EventLogWriter> logger)
    {
        // Subscribed at construction, before any listener starts, so that no event is ever missed.
        _subscription = events.Subscribe();
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var appEvent in _subscription.Reader.ReadAllAsync(stoppingToken))
            {
                Write(appEvent);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            // Flush what was published before the stop: the last events are often the interesting ones.
            while (_subscription.Reader.TryRead(out var appEvent))
            {
                Write(appEvent);
            }
        }
    }

    public override void Dispose()
    {
        _subscription.Dispose();
        base.Dispose();
    }

    private void Write(AppHbEvent appEvent)
    {
        var line = appEvent.Describe();
        switch (appEvent)
        {
            case ClientEvent { ClientKind: ClientEventKind.Hung or ClientEventKind.Died }:
                Log.ClientError(_logger, line);
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
