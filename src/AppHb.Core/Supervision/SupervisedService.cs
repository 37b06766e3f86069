namespace AppHb.Core.Supervision;

/// <summary>What to do once a stopping service's process is gone. Ordered by strength: a later, stronger request
/// replaces a pending weaker one (a removal wins over a restart).</summary>
internal enum AfterStop
{
    /// <summary>Stay stopped (or wait for requirements, if still wanted).</summary>
    Nothing,
    /// <summary>Start again at once; a deliberate restart, not counted against the restart policy.</summary>
    Restart,
    /// <summary>A failed check asked for the restart: it counts, with backoff and escalation, like a crash.</summary>
    RestartCounted,
    /// <summary>Apply the restart policy's escalation.</summary>
    Escalate,
    /// <summary>Reload removed the service.</summary>
    Remove,
    /// <summary>Reload changed the service: start the new definition.</summary>
    Replace,
}

/// <summary>One check's running record.</summary>
public sealed class CheckState
{
    internal CheckState(SupervisedService service, int index, CheckDefinition definition)
    {
        Definition = definition;
        Timer = new SupervisorTimer(SupervisorTimerKind.Check, service, index);
    }

    public CheckDefinition Definition { get; }

    public int ConsecutiveFailures { get; internal set; }

    public bool? LastPassed { get; internal set; }

    public string LastMessage { get; internal set; } = string.Empty;

    public double LastDurationMs { get; internal set; }

    public long Runs { get; internal set; }

    public long Failures { get; internal set; }

    /// <summary>A run of this check was asked for and has not reported yet.</summary>
    internal bool InFlight { get; set; }

    internal SupervisorTimer Timer { get; }
}

/// <summary>The supervisor's record of one service: read by status and exporters, changed only by the
/// <see cref="SupervisorMachine"/> that owns it.</summary>
public sealed class SupervisedService
{
    internal SupervisedService(ServiceDefinition definition, long ticksPerSecond, long now)
    {
        Definition = definition;
        TicksPerSecond = ticksPerSecond;
        Tracker = new RestartTracker(definition.Restart, ticksPerSecond);
        StateSince = now;
        Timer = new SupervisorTimer(SupervisorTimerKind.None, this, -1);
        Checks = NewChecks(definition);
    }

    public string Name => Definition.Name;

    public ServiceDefinition Definition { get; internal set; }

    public ServiceRunState State { get; internal set; } = ServiceRunState.Waiting;

    /// <summary>The operator's and the policy's intent: start it (when what it requires is ready).</summary>
    public bool Wanted { get; internal set; } = true;

    /// <summary>Timestamp (of the machine's clock) of the last state change.</summary>
    public long StateSince { get; internal set; }

    public int? Pid { get; internal set; }

    /// <summary>The process was adopted from a pidfile, not spawned by apphbd.</summary>
    public bool Adopted { get; internal set; }

    /// <summary>The pidfile service's start command is running; the service's own pid comes from the pidfile.</summary>
    public bool Launching { get; internal set; }

    /// <summary>The current run: every launch gets a new number, unique in the machine.</summary>
    public int Run { get; internal set; }

    public long Restarts { get; internal set; }

    /// <summary>How it last ended, for people ("signal 9 (SIGKILL)"); formatted when read, not on the respawn path.</summary>
    public string? LastExit => _lastExitText ?? _lastExit?.ToString();

    public int? LastExitCode => _lastExit?.ExitCode;

    public int? LastExitSignal => _lastExit?.Signal;

    private ProcessExit? _lastExit;
    private string? _lastExitText;

    internal void SetLastExit(ProcessExit exit) => (_lastExit, _lastExitText) = (exit, null);

    internal void SetLastExit(string text) => (_lastExit, _lastExitText) = (null, text);

    /// <summary>The last STATUS= it sent.</summary>
    public string? StatusText { get; internal set; }

    /// <summary>What it waits for: a service it requires, or its resource group.</summary>
    public string? WaitingFor { get; internal set; }

    public IReadOnlyList<CheckState> Checks { get; private set; }

    public bool HasProcess => Pid is not null;

    internal long TicksPerSecond { get; }

    internal RestartTracker Tracker { get; set; }

    internal long StartedAt { get; set; }

    /// <summary>Backoff ends: a restart scheduled by the policy may not launch before this timestamp.</summary>
    internal long NotBefore { get; set; }

    /// <summary>The one pending timer of the service's lifecycle (backoff, readiness delay, stop timeout, pidfile
    /// poll); checks have their own.</summary>
    internal SupervisorTimer Timer { get; }

    internal AfterStop AfterStop { get; set; }

    internal string StopReason { get; set; } = string.Empty;

    internal ServiceDefinition? Replacement { get; set; }

    /// <summary>Its checks run (from the run's start until it stops).</summary>
    internal bool ChecksActive { get; set; }

    /// <summary>Its WATCHDOG=1 heartbeats are registered with the registry.</summary>
    internal bool HeartbeatWatched { get; set; }

    /// <summary>Removed from the configuration while its process stopped.</summary>
    internal bool Removed { get; set; }

    internal void Redefine(ServiceDefinition definition)
    {
        Definition = definition;
        Tracker = new RestartTracker(definition.Restart, TicksPerSecond);
        Checks = NewChecks(definition);
    }

    private CheckState[] NewChecks(ServiceDefinition definition) =>
        definition.Checks.Select((c, i) => new CheckState(this, i, c)).ToArray();
}

internal enum SupervisorTimerKind
{
    None,
    Backoff,
    Readiness,
    StopTimeout,
    PidFilePoll,
    Check,
    ShutdownStep,
}

/// <summary>One deadline of the machine. Arming bumps the version; an entry of the deadline queue whose version is
/// stale is skipped when it surfaces, so cancelling is O(1) and the queue needs no handles.</summary>
internal sealed class SupervisorTimer(SupervisorTimerKind kind, SupervisedService? service, int check)
{
    public SupervisorTimerKind Kind { get; set; } = kind;

    /// <summary>The service it belongs to; null for the machine's own (the shutdown's step).</summary>
    public SupervisedService? Service { get; } = service;

    public int Check { get; } = check;

    public int Version { get; set; }

    public bool Armed { get; set; }

    public long Due { get; set; }

    /// <summary>The run the timer belongs to: a timer outliving its run does nothing.</summary>
    public int Run { get; set; }

    /// <summary>The pid a stop timeout will SIGKILL; the attempt number of a pidfile poll.</summary>
    public int Argument { get; set; }
}
