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
    /// <summary>The notification for an event, or null for the many events that are none. Which one is decided before
    /// anything is built: the agent sees every event of the node (a burst of client registrations included), and only
    /// a notification needs the event's text and the service's state.</summary>
    /// <param name="serviceIndex">The service table's row of a service (StatusMib.ServiceIndex).</param>
    /// <param name="serviceNow">The service's status now (the event says what happened, the status what it left).</param>
    /// <param name="clusterNow">The pair's status now, for the pair's events (null on a single node).</param>
    public static MibNotification? ForEvent(AppHbEvent appEvent, Func<string, uint> serviceIndex, Func<string, ServiceStatus?> serviceNow,
        Func<ClusterStatus?>? clusterNow = null)
    {
        ArgumentNullException.ThrowIfNull(appEvent);
        ArgumentNullException.ThrowIfNull(serviceIndex);
        ArgumentNullException.ThrowIfNull(serviceNow);
        return appEvent switch
        {
            ClientEvent { ClientKind: ClientEventKind.Hung } hung when hung.Client.Id is > 0 and <= uint.MaxValue => ClientHung(hung),
            ServiceEvent service when Trap(service) is { } trap => ForService(service, trap, serviceIndex(service.Service), serviceNow(service.Service)),
            PairEvent pair when pair.Kind is "takeover" or "fenced" or "fence-failed" or "link-dead" or "split-brain" or "both-active" => ForPair(pair, clusterNow?.Invoke()),
            _ => null,
        };
    }

    private static MibNotification ForPair(PairEvent pair, ClusterStatus? now)
    {
        Variable Scalar(ObjectIdentifier oid, ISnmpData value) => new(oid.Append(0), value);
        var fence = Scalar(ApphbMib.Cluster.LastFence, ApphbMib.Display(StatusMib.LastFence(now?.LastFence)));
        return pair.Kind switch
        {
            "takeover" => new(ApphbMib.Notification.ClusterTakeover,
                [Scalar(ApphbMib.Cluster.Node, ApphbMib.Display(now?.Node)), Scalar(ApphbMib.Cluster.Generation, ApphbMib.Display(now?.Generation)), Message(pair)]),
            "fenced" => new(ApphbMib.Notification.ClusterFenced, [Scalar(ApphbMib.Cluster.Peer, ApphbMib.Display(now?.Peer)), fence, Message(pair)]),
            "fence-failed" => new(ApphbMib.Notification.ClusterFenceFailed, [Scalar(ApphbMib.Cluster.Peer, ApphbMib.Display(now?.Peer)), fence, Message(pair)]),
            "link-dead" => new(ApphbMib.Notification.ClusterLinkDown, [new(ApphbMib.NotifyLink.Append(0), ApphbMib.Display(pair.Link)), Message(pair)]),
            _ => new(ApphbMib.Notification.ClusterSplitBrain,
                [Scalar(ApphbMib.Cluster.Generation, ApphbMib.Display(now?.Generation)), Scalar(ApphbMib.Cluster.PeerGeneration, ApphbMib.Display(now?.PeerGeneration)), Message(pair)]),
        };
    }

    private static ObjectIdentifier? Trap(ServiceEvent service) => service.ServiceKind switch
    {
        ServiceEventKind.GaveUp => ApphbMib.Notification.ServiceGaveUp,
        ServiceEventKind.Restarting => ApphbMib.Notification.ServiceRestarted,
        ServiceEventKind.Exited or ServiceEventKind.StartFailed or ServiceEventKind.CheckFailed or ServiceEventKind.HeartbeatLost
            or ServiceEventKind.Alert when service.IsFailure => ApphbMib.Notification.ServiceFailed,
        _ => null,
    };

    private static MibNotification ClientHung(ClientEvent hung)
    {
        var row = (uint)hung.Client.Id;
        return new(ApphbMib.Notification.ClientHung,
        [
            new(ApphbMib.Client.Name.Append(row), ApphbMib.Display(hung.Client.Name)),
            new(ApphbMib.Client.Instance.Append(row), ApphbMib.Display(hung.Client.Instance)),
            new(ApphbMib.Client.Pid.Append(row), new Gauge32((uint)hung.Client.Pid)),
            Message(hung),
        ]);
    }

    /// <summary>For an event <see cref="Trap"/> maps to <paramref name="trap"/>.</summary>
    private static MibNotification ForService(ServiceEvent service, ObjectIdentifier trap, uint row, ServiceStatus? now)
    {
        var name = new Variable(ApphbMib.Service.Name.Append(row), ApphbMib.Display(service.Service));
        return new(trap, service.ServiceKind switch
        {
            ServiceEventKind.GaveUp => [name, new(ApphbMib.Service.Critical.Append(row), ApphbMib.Truth(now?.Critical ?? false)), Message(service)],
            ServiceEventKind.Restarting => [name, new(ApphbMib.Service.Restarts.Append(row), new Counter32(unchecked((uint)(now?.Restarts ?? 0)))), Message(service)],
            _ =>
            [
                name,
                new(ApphbMib.Service.State.Append(row), ApphbMib.Enumeration(ApphbMib.Service.States, now?.State ?? "failed")),
                new(ApphbMib.Service.LastExit.Append(row), ApphbMib.Display(now?.LastExit)),
                Message(service),
            ],
        });
    }

    private static Variable Message(AppHbEvent appEvent) => new(ApphbMib.NotifyMessage.Append(0), ApphbMib.Display(appEvent.Describe()));

    /// <summary>Sent once after start when the watchdog device says the last reset was its own.</summary>
    public static MibNotification WatchdogResetBoot(string device) => new(ApphbMib.Notification.WatchdogResetBoot,
    [
        new(ApphbMib.Watchdog.Device.Append(0), ApphbMib.Display(device)),
        new(ApphbMib.Watchdog.LastBootByWatchdog.Append(0), ApphbMib.Truth(true)),
        new(ApphbMib.NotifyMessage.Append(0), ApphbMib.Display($"the node booted after a reset by the watchdog {device}")),
    ]);
}
