using AppHb.Core.Heartbeats;
using AppHb.Core.Supervision;

namespace AppHb.Daemon.Services;

/// <summary>Where a service stands. Waiting: wanted, but a requirement is not ready (or it was stopped because one
/// restarted). Backoff: it exited and its restart is scheduled. Exited: stopped by a do-not-restart exit code.
/// Failed: its restart policy gave up.</summary>
internal enum ServiceState
{
    Waiting,
    Starting,
    Running,
    Stopping,
    Backoff,
    Stopped,
    Exited,
    Failed,
}

/// <summary>What to do once a stopping service's process is gone.</summary>
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
internal sealed class CheckState(CheckDefinition definition)
{
    public CheckDefinition Definition { get; } = definition;
    public int ConsecutiveFailures { get; set; }
    public bool? LastPassed { get; set; }
    public string LastMessage { get; set; } = string.Empty;
    public double LastDurationMs { get; set; }
    public long Runs { get; set; }
    public long Failures { get; set; }
}

/// <summary>The supervisor's record of one service. Mutated only under the supervisor's lock.</summary>
internal sealed class SupervisedService
{
    public SupervisedService(ServiceDefinition definition, long ticksPerSecond, ServiceOutput output)
    {
        Definition = definition;
        Tracker = new RestartTracker(definition.Restart, ticksPerSecond);
        Output = output;
        Checks = definition.Checks.Select(c => new CheckState(c)).ToArray();
    }

    public ServiceDefinition Definition { get; set; }
    public ServiceState State { get; set; } = ServiceState.Waiting;
    public bool Wanted { get; set; } = true;
    public long StateSince { get; set; }
    public int? Pid { get; set; }
    public bool Adopted { get; set; }
    /// <summary>The pidfile service's start command is running; the service's own pid comes from the pidfile.</summary>
    public bool Launching { get; set; }
    public int Generation { get; set; }
    public long StartedAt { get; set; }
    public RestartTracker Tracker { get; set; }
    public long Restarts { get; set; }
    public string? LastExit { get; set; }
    public int? LastExitCode { get; set; }
    public int? LastExitSignal { get; set; }
    public long NotBefore { get; set; }
    public ITimer? Timer { get; set; }
    public AfterStop AfterStop { get; set; }
    public string StopReason { get; set; } = string.Empty;
    public ServiceDefinition? Replacement { get; set; }
    public List<TaskCompletionSource> StopWaiters { get; } = [];
    public TaskCompletionSource StateChanged { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public NotifyEndpoint? Notify { get; set; }
    public ServiceOutput Output { get; }
    public RegisteredClient? WatchdogClient { get; set; }
    public CancellationTokenSource? ChecksCancellation { get; set; }
    public CheckState[] Checks { get; set; }
    public string? StatusText { get; set; }
    public string? WaitingFor { get; set; }
    public bool HasProcess => Pid is not null;
}
