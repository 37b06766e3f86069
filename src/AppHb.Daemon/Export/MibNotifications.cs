using AppHb.Core.Events;
using AppHb.Export.Snmp;
using AppHb.Protocol;

namespace AppHb.Daemon.Export;

/// <summary>One APPHB-MIB notification: its OID and the objects it carries, in the order the MIB's OBJECTS clause
/// lists them, each with its instance, and then nothing else.</summary>
internal readonly record struct MibNotification(ObjectIdentifier Trap, IReadOnlyList<Variable> Objects);

/// <summary>Which events become notifications, and with what: pure, so every notification is checked against the
/// MIB's OBJECTS clauses without snmpd.</summary>
internal static class MibNotifications
{
    /// <param name="serviceIndex">The service table's row of a service (StatusMib.ServiceIndex).</param>
    /// <param name="serviceNow">The service's status now (the event says what happened, the status what it left).</param>
    public static MibNotification? ForEvent(AppHbEvent appEvent, Func<string, uint> serviceIndex, Func<string, ServiceStatus?> serviceNow)
    {
        ArgumentNullException.ThrowIfNull(appEvent);
        ArgumentNullException.ThrowIfNull(serviceIndex);
        ArgumentNullException.ThrowIfNull(serviceNow);
        var message = new Variable(ApphbMib.NotifyMessage.Append(0), ApphbMib.Display(appEvent.Describe()));
        switch (appEvent)
        {
            case ClientEvent { ClientKind: ClientEventKind.Hung } hung when hung.Client.Id is > 0 and <= uint.MaxValue:
            {
                var row = (uint)hung.Client.Id;
                return new(ApphbMib.Notification.ClientHung,
                [
                    new(ApphbMib.Client.Name.Append(row), ApphbMib.Display(hung.Client.Name)),
                    new(ApphbMib.Client.Instance.Append(row), ApphbMib.Display(hung.Client.Instance)),
                    new(ApphbMib.Client.Pid.Append(row), new Gauge32((uint)hung.Client.Pid)),
                    message,
                ]);
            }

            case ServiceEvent service:
            {
                var row = serviceIndex(service.Service);
                var now = serviceNow(service.Service);
                var name = new Variable(ApphbMib.Service.Name.Append(row), ApphbMib.Display(service.Service));
                return service.ServiceKind switch
                {
                    ServiceEventKind.GaveUp => new MibNotification(ApphbMib.Notification.ServiceGaveUp,
                        [name, new(ApphbMib.Service.Critical.Append(row), ApphbMib.Truth(now?.Critical ?? false)), message]),
                    ServiceEventKind.Restarting => new MibNotification(ApphbMib.Notification.ServiceRestarted,
                        [name, new(ApphbMib.Service.Restarts.Append(row), new Counter32(unchecked((uint)(now?.Restarts ?? 0)))), message]),
                    ServiceEventKind.Exited or ServiceEventKind.StartFailed or ServiceEventKind.CheckFailed or ServiceEventKind.HeartbeatLost
                        or ServiceEventKind.Alert when service.IsFailure => new MibNotification(ApphbMib.Notification.ServiceFailed,
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

    /// <summary>Sent once after start when the watchdog device says the last reset was its own.</summary>
    public static MibNotification WatchdogResetBoot(string device) => new(ApphbMib.Notification.WatchdogResetBoot,
    [
        new(ApphbMib.Watchdog.Device.Append(0), ApphbMib.Display(device)),
        new(ApphbMib.Watchdog.LastBootByWatchdog.Append(0), ApphbMib.Truth(true)),
        new(ApphbMib.NotifyMessage.Append(0), ApphbMib.Display($"the node booted after a reset by the watchdog {device}")),
    ]);
}
