namespace AppHb.Core.Supervision;

/// <summary>When a started service counts as ready, which gates the start of the services that require it.</summary>
public enum ReadinessKind
{
    /// <summary>Ready as soon as it is started.</summary>
    None,
    /// <summary>Ready when it sends READY=1 on the NOTIFY_SOCKET it is given (sd_notify).</summary>
    Notify,
    /// <summary>Ready when its first API check passes.</summary>
    Probe,
    /// <summary>Ready a fixed delay after it started.</summary>
    Delay,
}

public sealed record Readiness(ReadinessKind Kind, TimeSpan Delay)
{
    public static Readiness Immediate { get; } = new(ReadinessKind.None, TimeSpan.Zero);

    public override string ToString() => Kind == ReadinessKind.Delay ? $"delay {Delay.TotalMilliseconds:0} ms" : Kind.ToString().ToLowerInvariant();
}

/// <summary>The kinds of API check (type 2): is the service answering?</summary>
public enum CheckKind
{
    /// <summary>A TCP connect succeeds.</summary>
    Tcp,
    /// <summary>An HTTP GET answers the expected status (and body pattern).</summary>
    Http,
    /// <summary>A command exits with an OCF code: 0 running, 7 not running, anything else failed.</summary>
    Command,
    /// <summary>An LSB init script's <c>status</c>: 0 running, 3 not running, anything else failed.</summary>
    Lsb,
}

/// <summary>What to do when a check fails its threshold of consecutive times.</summary>
public enum CheckAction
{
    /// <summary>Restart the service alone; what requires it keeps running.</summary>
    Restart,
    /// <summary>Restart the service and, after it, every service that requires it (as for a crash).</summary>
    RestartWithDependents,
    /// <summary>Publish the failure as an event and change nothing.</summary>
    Alert,
    /// <summary>Apply the restart policy's escalation now (give-up or reboot).</summary>
    Escalate,
}

/// <summary>One API check.</summary>
/// <param name="Target">host:port for tcp, the URL for http, the init script for lsb; unused for command.</param>
/// <param name="Command">argv of a command check.</param>
/// <param name="Heavy">The rare, deep check of the two OCF depths (OCF_CHECK_LEVEL 20 instead of 0).</param>
public sealed record CheckDefinition(
    string Name,
    CheckKind Kind,
    string Target,
    IReadOnlyList<string> Command,
    int ExpectStatus,
    string? BodyPattern,
    TimeSpan Interval,
    TimeSpan Timeout,
    int Failures,
    CheckAction Action,
    bool Heavy)
{
    public string Canonical() => $"{Name}|{Kind}|{Target}|{string.Join('\u001f', Command)}|{ExpectStatus}|{BodyPattern}|{Interval.Ticks}|{Timeout.Ticks}|{Failures}|{Action}|{Heavy}";
}

/// <summary>Where a service's heartbeats (type 3 checks) come from.</summary>
public enum HeartbeatSource
{
    /// <summary>An AppHb.Client registered under the service's name.</summary>
    Client,
    /// <summary>WATCHDOG=1 datagrams on the NOTIFY_SOCKET, with WATCHDOG_USEC and WATCHDOG_PID set for the child.</summary>
    Notify,
}

public sealed record HeartbeatCheck(HeartbeatSource Source, TimeSpan Interval, CheckAction Action);

/// <summary>One supervised service, as configured.</summary>
/// <param name="Command">argv; argv[0] resolved to an absolute path at load.</param>
/// <param name="OutputFile">Where stdout and stderr go; null for the daemon's log (the journal) line by line.</param>
/// <param name="PidFile">A daemon that forks: adopt the pid written here (checked against its start time).</param>
/// <param name="Critical">Staying failed past its escalation reboots the node through the watchdog.</param>
public sealed record ServiceDefinition(
    string Name,
    IReadOnlyList<string> Command,
    string? WorkingDirectory,
    IReadOnlyList<KeyValuePair<string, string>> Environment,
    string? User,
    string? Group,
    UnixFileMode? Umask,
    string? OutputFile,
    int StopSignal,
    TimeSpan StopTimeout,
    IReadOnlyList<string> Requires,
    Readiness Readiness,
    RestartPolicy Restart,
    bool Critical,
    string? PidFile,
    HeartbeatCheck? Heartbeat,
    IReadOnlyList<CheckDefinition> Checks)
{
    /// <summary>The resource group of the node's own services: wanted wherever apphbd runs.</summary>
    public const string NodeGroup = "node";

    /// <summary>The resource group of the pair's services (apphbd.yaml's <c>cluster.group</c>): they run on the active
    /// node only.</summary>
    public const string PairGroup = "pair";

    /// <summary>The resource group the service belongs to. A group's services run only while the group is active on
    /// this node: <see cref="NodeGroup"/> always is; the pair (level 3) activates its group on the active node only.</summary>
    public string ResourceGroup { get; init; } = NodeGroup;

    /// <summary>Everything that defines the service, as one string: reload restarts a service whose canonical form
    /// changed and leaves the others running.</summary>
    public string Canonical() => string.Join('\u001e',
        Name, string.Join('\u001f', Command), WorkingDirectory, string.Join('\u001f', Environment.Select(e => $"{e.Key}={e.Value}")),
        User, Group, Umask?.ToString(), OutputFile, StopSignal, StopTimeout.Ticks, string.Join('\u001f', Requires), Readiness,
        Restart.Canonical(), Critical, PidFile, Heartbeat?.ToString(), string.Join('\u001f', Checks.Select(c => c.Canonical())), ResourceGroup);
}
