using Microsoft.Extensions.Logging;

namespace AppHb.Daemon;

/// <summary>Every log line apphbd writes, with stable event ids (grouped by hundreds per area) so that journal
/// filters and alerts can rely on them.</summary>
internal static partial class Log
{
    // 1xx: daemon lifecycle
    [LoggerMessage(100, LogLevel.Information, "apphbd {Version} starting (pid {Pid}), configuration {Source}")]
    public static partial void Starting(ILogger logger, string version, int pid, string source);

    [LoggerMessage(101, LogLevel.Information, "apphbd ready: listening on {SocketPath}, watchdog {Backend}")]
    public static partial void Ready(ILogger logger, string socketPath, string backend);

    [LoggerMessage(102, LogLevel.Information, "apphbd stopping (orderly)")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(103, LogLevel.Information, "Told systemd READY=1 (watchdog ping every {IntervalMs} ms when WatchdogSec= is set)")]
    public static partial void SystemdReady(ILogger logger, double intervalMs);

    // 2xx: soft realtime
    [LoggerMessage(200, LogLevel.Information, "Realtime: {Outcome}")]
    public static partial void RealtimeApplied(ILogger logger, string outcome);

    [LoggerMessage(201, LogLevel.Warning, "Realtime not available, running degraded: {Outcome}")]
    public static partial void RealtimeRefused(ILogger logger, string outcome);

    [LoggerMessage(202, LogLevel.Information, "Realtime disabled by configuration (realtime.enabled: false)")]
    public static partial void RealtimeDisabled(ILogger logger);

    // 3xx: watchdog
    [LoggerMessage(300, LogLevel.Information, "Watchdog {Backend} {Device} ({Identity}): timeout {TimeoutSeconds} s, tickle every {PeriodMs} ms")]
    public static partial void WatchdogOpened(ILogger logger, string backend, string device, string identity, double timeoutSeconds, double periodMs);

    [LoggerMessage(301, LogLevel.Warning, "The last reset of this node was caused by the watchdog (boot status {BootStatus})")]
    public static partial void WatchdogCausedLastBoot(ILogger logger, string bootStatus);

    [LoggerMessage(302, LogLevel.Warning, "Watchdog: {Note}")]
    public static partial void WatchdogNote(ILogger logger, string note);

    [LoggerMessage(303, LogLevel.Error, "Withholding watchdog tickles: the event loop last proved alive {AgeMs} ms ago (limit {LimitMs} ms); the node resets in {TimeoutSeconds} s unless it recovers")]
    public static partial void TickleWithheld(ILogger logger, double ageMs, double limitMs, double timeoutSeconds);

    [LoggerMessage(304, LogLevel.Warning, "Watchdog tickles resumed after {WithheldCount} withheld")]
    public static partial void TickleResumed(ILogger logger, long withheldCount);

    [LoggerMessage(305, LogLevel.Error, "Watchdog keepalive failed")]
    public static partial void TickleFailed(ILogger logger, Exception exception);

    [LoggerMessage(306, LogLevel.Information, "Watchdog disarmed (magic close) on orderly stop")]
    public static partial void WatchdogDisarmed(ILogger logger);

    [LoggerMessage(307, LogLevel.Critical, "Cannot own the watchdog: {Reason}")]
    public static partial void WatchdogUnavailable(ILogger logger, string reason);

    [LoggerMessage(308, LogLevel.Warning, "Tickle loop woke {LateMs} ms late")]
    public static partial void TickleLate(ILogger logger, double lateMs);

    // 4xx: clients and protocol
    [LoggerMessage(400, LogLevel.Information, "{Description}")]
    public static partial void ClientInfo(ILogger logger, string description);

    [LoggerMessage(401, LogLevel.Warning, "{Description}")]
    public static partial void ClientWarning(ILogger logger, string description);

    [LoggerMessage(402, LogLevel.Error, "{Description}")]
    public static partial void ClientError(ILogger logger, string description);

    [LoggerMessage(410, LogLevel.Warning, "Protocol error from pid {Pid} (uid {Uid}), frame {Sequence}: {Code}: {Message}; closing that connection")]
    public static partial void ProtocolViolation(ILogger logger, int pid, uint uid, uint sequence, string code, string message);

    [LoggerMessage(411, LogLevel.Error, "Connection from pid {Pid} failed unexpectedly")]
    public static partial void ConnectionFailed(ILogger logger, int pid, Exception exception);

    [LoggerMessage(412, LogLevel.Warning, "Event watcher pid {Pid} reads too slowly: {Dropped} events dropped for it")]
    public static partial void WatcherDropped(ILogger logger, int pid, long dropped);

    [LoggerMessage(413, LogLevel.Warning, "apphbd is at its open-file limit with {Open} connections open: new connections are refused (root's and apphbd's own are still served) until some close; raise LimitNOFILE= if this is legitimate load")]
    public static partial void FileLimitReached(ILogger logger, int open);

    [LoggerMessage(417, LogLevel.Information, "apphbd is stopping: new registrations and subscriptions are refused (ShuttingDown)")]
    public static partial void ShuttingDownRefusing(ILogger logger);

    [LoggerMessage(416, LogLevel.Information, "Open files available again ({Open} connections open); {Refused} connection(s) refused so far")]
    public static partial void FileLimitRecovered(ILogger logger, int open, long refused);

    [LoggerMessage(414, LogLevel.Warning, "{Refused} client(s) not watched for process exit ({Reason}); their death is seen when their socket closes")]
    public static partial void ExitWatchUnavailable(ILogger logger, long refused, string reason);

    [LoggerMessage(415, LogLevel.Warning, "{Shortfall}")]
    public static partial void OpenFileLimitLow(ILogger logger, string shortfall);

    // 5xx: event loop
    [LoggerMessage(500, LogLevel.Critical, "The deadline loop failed; the watchdog will no longer be fed")]
    public static partial void DeadlineLoopFailed(ILogger logger, Exception exception);

    // 6xx: supervisor
    [LoggerMessage(600, LogLevel.Information, "{Description}")]
    public static partial void ServiceInfo(ILogger logger, string description);

    [LoggerMessage(601, LogLevel.Error, "{Description}")]
    public static partial void ServiceError(ILogger logger, string description);

    [LoggerMessage(602, LogLevel.Critical, "NODE REBOOT: {Description}")]
    public static partial void NodeRebootEvent(ILogger logger, string description);

    [LoggerMessage(603, LogLevel.Information, "{Service}[{Pid}]: {Line}")]
    public static partial void ServiceOutput(ILogger logger, string service, int pid, string line);

    [LoggerMessage(604, LogLevel.Warning, "Not a child subreaper (prctl refused): services that double-fork will be reparented to PID 1")]
    public static partial void SubreaperRefused(ILogger logger);

    [LoggerMessage(605, LogLevel.Warning, "Service {Service}: bad notify message ignored: {Problem}")]
    public static partial void NotifyIgnored(ILogger logger, string service, string problem);

    [LoggerMessage(606, LogLevel.Warning, "Services not ready {Seconds} s after start: {Services}; READY=1 is sent anyway")]
    public static partial void ServicesSlowToStart(ILogger logger, double seconds, string services);

    [LoggerMessage(607, LogLevel.Critical, "Stopping services, then no longer feeding the watchdog: {Reason}")]
    public static partial void RebootStarting(ILogger logger, string reason);

    [LoggerMessage(608, LogLevel.Critical, "Watchdog feeding stopped; the hardware watchdog ({Backend}, timeout {TimeoutSeconds} s) resets the node")]
    public static partial void RebootWatchdogStopped(ILogger logger, string backend, double timeoutSeconds);

    [LoggerMessage(609, LogLevel.Information, "Reload: {Summary}")]
    public static partial void Reloaded(ILogger logger, string summary);

    [LoggerMessage(610, LogLevel.Warning, "Reload: {Problem}")]
    public static partial void ReloadWarning(ILogger logger, string problem);

    [LoggerMessage(611, LogLevel.Error, "Supervisor callback failed")]
    public static partial void SupervisorFailed(ILogger logger, Exception exception);

    [LoggerMessage(612, LogLevel.Critical, "Service {Service} asks for a failover, but no peer node is configured: it stays failed ({Reason})")]
    public static partial void FailoverUnavailable(ILogger logger, string service, string reason);

    // 7xx: export
    [LoggerMessage(700, LogLevel.Information, "Metrics: Prometheus scrapes {Url}")]
    public static partial void MetricsListening(ILogger logger, string url);

    [LoggerMessage(710, LogLevel.Information, "SNMP: {Message}")]
    public static partial void SnmpRegistered(ILogger logger, string message);

    [LoggerMessage(711, LogLevel.Warning, "SNMP: {Message}; reconnecting")]
    public static partial void SnmpLost(ILogger logger, string message);

    [LoggerMessage(712, LogLevel.Information, "SNMP: no AgentX master yet ({Message}); apphbd keeps trying")]
    public static partial void SnmpWaiting(ILogger logger, string message);

    [LoggerMessage(713, LogLevel.Error, "SNMP: {Message}")]
    public static partial void SnmpRefused(ILogger logger, string message);

    [LoggerMessage(714, LogLevel.Warning, "SNMP: {Message}")]
    public static partial void SnmpProblem(ILogger logger, string message);

    // 8xx: the pair (level 3)
    [LoggerMessage(800, LogLevel.Information, "Pair: node {Node} (id {NodeId}) with peer {Peer} (id {PeerId}) over {Links}")]
    public static partial void ClusterStarting(ILogger logger, string node, ushort nodeId, string peer, ushort peerId, string links);

    [LoggerMessage(801, LogLevel.Information, "Pair: {Kind}: {Message}")]
    public static partial void ClusterInfo(ILogger logger, string kind, string message);

    [LoggerMessage(806, LogLevel.Error, "Pair: {Kind}: {Message}")]
    public static partial void ClusterError(ILogger logger, string kind, string message);

    [LoggerMessage(802, LogLevel.Critical, "Pair: the watchdog is no longer fed ({Reason}): the node resets")]
    public static partial void ClusterStopsFeeding(ILogger logger, string reason);

    [LoggerMessage(803, LogLevel.Critical, "Pair: service {Service} asks for a failover ({Reason}): {Outcome}")]
    public static partial void ClusterFailover(ILogger logger, string service, string reason, string outcome);

    [LoggerMessage(804, LogLevel.Information, "Pair: the group is handed over to the peer before apphbd stops")]
    public static partial void ClusterHandedOver(ILogger logger);

    [LoggerMessage(805, LogLevel.Information, "Pair: the peer knows this node is stopping on purpose (its silence is not a failure)")]
    public static partial void ClusterLeft(ILogger logger);

    // 9xx: replication
    [LoggerMessage(900, LogLevel.Information, "Replication: this node is the {Side} of {Path} (peer {Peer})")]
    public static partial void ReplicationSide(ILogger logger, string side, string path, string peer);

    [LoggerMessage(901, LogLevel.Warning, "Replication: a connection ended: {Reason}")]
    public static partial void ReplicationEnded(ILogger logger, string reason);

    [LoggerMessage(902, LogLevel.Error, "Replication: the {Side} side could not start: {Message}")]
    public static partial void ReplicationFailed(ILogger logger, string side, string message);
}
