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
    Cluster.ClusterHost cluster, ILogger<SnmpAgent> logger) : BackgroundService
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
            var boot = MibNotifications.WatchdogResetBoot(device.DevicePath ?? device.Backend);
            subagent.Notify(boot.Trap, boot.Objects);
        }

        var session = subagent.RunAsync(stoppingToken);
        try
        {
            await foreach (var appEvent in subscription.Reader.ReadAllAsync(stoppingToken))
            {
                // The service's state now, not the MIB's cached snapshot: the notification describes what just happened.
                if (MibNotifications.ForEvent(appEvent, mib.ServiceIndex, name => supervisor.Snapshot().FirstOrDefault(s => s.Name == name), cluster.Status) is { } notification)
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
