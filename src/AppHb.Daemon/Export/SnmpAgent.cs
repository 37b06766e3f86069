using AppHb.Core.Events;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Export.Snmp;
using AppHb.Export.Snmp.AgentX;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Export;

/// <summary>apphbd's AgentX subagent: serves APPHB-MIB through snmpd and turns events into its notifications
/// (service failed, restarted, gave up; client hung; booted after a watchdog reset).</summary>
internal sealed class SnmpAgent(ApphbdOptions options, StatusMib mib, EventStream events, WatchdogTickler tickler, Services.ServiceSupervisor supervisor, TimeProvider time,
    ILogger<SnmpAgent> logger) : BackgroundService
{
    private AgentXSubagent? _subagent;

    /// <summary>The running subagent (null when SNMP is off or before start).</summary>
    public AgentXSubagent? Subagent => _subagent;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Snmp.AgentX is not { } endpoint)
        {
            return;
        }

        var subagent = new AgentXSubagent(endpoint, new AgentXSubagentOptions(ApphbMib.Root, $"apphbd {Status.StatusReporter.Version} (APPHB-MIB)"),
            mib.Current, OnSessionChanged, time);
        _subagent = subagent;
        using var subscription = events.Subscribe(capacity: 10_000);
        if (tickler.Device is { LastBootByWatchdog: true } device)
        {
            subagent.Notify(ApphbMib.Notification.WatchdogResetBoot,
            [
                new(ApphbMib.Watchdog.Device.Append(0), ApphbMib.Display(device.DevicePath)),
                new(ApphbMib.Watchdog.LastBootByWatchdog.Append(0), ApphbMib.Truth(true)),
                new(ApphbMib.NotifyMessage.Append(0), ApphbMib.Display($"the node booted after a reset by the watchdog {device.DevicePath}")),
            ]);
        }

        var session = subagent.RunAsync(stoppingToken);
        try
        {
            await foreach (var appEvent in subscription.Reader.ReadAllAsync(stoppingToken))
            {
                if (Notification(appEvent) is { } notification)
                {
                    subagent.Notify(notification.Trap, notification.Objects);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await session;
    }

    internal (ObjectIdentifier Trap, IReadOnlyList<Variable> Objects)? Notification(AppHbEvent appEvent)
    {
        var message = new Variable(ApphbMib.NotifyMessage.Append(0), ApphbMib.Display(appEvent.Describe()));
        switch (appEvent)
        {
            case ClientEvent { ClientKind: ClientEventKind.Hung } hung when hung.Client.Id is > 0 and <= uint.MaxValue:
            {
                var row = (uint)hung.Client.Id;
                return (ApphbMib.Notification.ClientHung,
                [
                    new(ApphbMib.Client.Name.Append(row), ApphbMib.Display(hung.Client.Name)),
                    new(ApphbMib.Client.Instance.Append(row), ApphbMib.Display(hung.Client.Instance)),
                    new(ApphbMib.Client.Pid.Append(row), new Gauge32((uint)hung.Client.Pid)),
                    message,
                ]);
            }

            case ServiceEvent service:
            {
                // The state now, not the MIB's cached snapshot: the notification describes what just happened.
                var row = mib.ServiceIndex(service.Service);
                var now = supervisor.Snapshot().FirstOrDefault(s => s.Name == service.Service);
                var name = new Variable(ApphbMib.Service.Name.Append(row), ApphbMib.Display(service.Service));
                return service.ServiceKind switch
                {
                    ServiceEventKind.GaveUp => (ApphbMib.Notification.ServiceGaveUp,
                        [name, new(ApphbMib.Service.Critical.Append(row), ApphbMib.Truth(now?.Critical ?? false)), message]),
                    ServiceEventKind.Restarting => (ApphbMib.Notification.ServiceRestarted,
                        [name, new(ApphbMib.Service.Restarts.Append(row), new Counter32(unchecked((uint)(now?.Restarts ?? 0)))), message]),
                    ServiceEventKind.Exited or ServiceEventKind.StartFailed or ServiceEventKind.CheckFailed or ServiceEventKind.HeartbeatLost
                        or ServiceEventKind.Alert when service.IsFailure => (ApphbMib.Notification.ServiceFailed,
                        [
                            name,
                            new(ApphbMib.Service.State.Append(row), ApphbMib.Enumeration(ApphbMib.Service.States, now?.State ?? "failed")),
                            new(ApphbMib.Service.LastExit.Append(row), ApphbMib.Display(now?.LastExit)),
                            message,
                        ]),
                    _ => null,
                };
            }

            default:
                return null;
        }
    }

    private void OnSessionChanged(AgentXSessionChange change, string message)
    {
        switch (change)
        {
            case AgentXSessionChange.Registered:
                Log.SnmpRegistered(logger, message);
                break;
            case AgentXSessionChange.Lost:
                Log.SnmpLost(logger, message);
                break;
            case AgentXSessionChange.ConnectFailed:
                Log.SnmpWaiting(logger, message);
                break;
            case AgentXSessionChange.Refused:
                Log.SnmpRefused(logger, message);
                break;
            default:
                Log.SnmpProblem(logger, message);
                break;
        }
    }
}
