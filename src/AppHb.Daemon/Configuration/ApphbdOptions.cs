using AppHb.Linux.Realtime;
using AppHb.Linux.Watchdog;

namespace AppHb.Daemon.Configuration;

/// <summary>The whole validated configuration of apphbd (apphbd.yaml(5)).</summary>
public sealed record ApphbdOptions(
    SocketOptions Socket,
    ClientLimits Clients,
    WatchdogOptions Watchdog,
    RealtimeOptions Realtime,
    EventOptions Events,
    IReadOnlyList<AppHb.Core.Supervision.ServiceDefinition> Services,
    MetricsOptions Metrics,
    SnmpOptions Snmp,
    ClusterOptions? Cluster = null,
    ReplicationOptions? Replication = null)
{
    /// <summary>By value, services included (a record compares lists by reference).</summary>
    public bool Equals(ApphbdOptions? other) => other is not null && Socket == other.Socket && Clients == other.Clients
        && Watchdog == other.Watchdog && Realtime == other.Realtime && Events == other.Events && Metrics == other.Metrics && Snmp == other.Snmp
        && Cluster?.Canonical() == other.Cluster?.Canonical() && Replication?.Canonical() == other.Replication?.Canonical()
        && Services.Select(s => s.Canonical()).SequenceEqual(other.Services.Select(s => s.Canonical()), StringComparer.Ordinal);

    public override int GetHashCode() => HashCode.Combine(Socket, Clients, Watchdog, Realtime, Events, Services.Count);
}

/// <param name="Mode">Permission bits of the socket file.</param>
/// <param name="Group">Group owning the socket (name or gid), or null to leave it.</param>
public sealed record SocketOptions(string Path, UnixFileMode Mode, string? Group);

/// <param name="Max">Most heartbeat clients at once.</param>
/// <param name="MaxConnectionsPerUid">Most open connections of one uid. Root's and apphbd's own beyond it may still ask
/// for status and control services, never register or subscribe.</param>
/// <param name="ReadTimeout">How long a connection may hold part of a frame.</param>
/// <param name="SendTimeout">How long a reply may wait for the peer to read.</param>
public sealed record ClientLimits(int Max, int MaxConnectionsPerUid, TimeSpan ReadTimeout, TimeSpan SendTimeout);

/// <param name="Period">How often the tickle loop feeds the watchdog.</param>
public sealed record WatchdogOptions(WatchdogSettings Device, TimeSpan Period);

public sealed record RealtimeOptions(bool Enabled, bool LockMemory, RealtimePolicy Policy, int Priority);

public sealed record EventOptions(int History);

/// <param name="Listen">Where GET /metrics is served; null when disabled ("off").</param>
public sealed record MetricsOptions(System.Net.IPEndPoint? Listen);

/// <param name="AgentX">snmpd's AgentX socket; null when SNMP is disabled ("off").</param>
public sealed record SnmpOptions(AppHb.Export.Snmp.AgentX.AgentXEndpoint? AgentX);
