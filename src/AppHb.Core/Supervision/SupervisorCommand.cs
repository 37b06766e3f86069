using AppHb.Core.Events;

namespace AppHb.Core.Supervision;

/// <summary>What the <see cref="SupervisorMachine"/> asks its host to do. The host runs each one at once, in order,
/// under the lock that serialises the machine's inputs, and reports what came of it as another input (a launch's pid,
/// a check's outcome). A run number identifies one start of one service: results and exits of an older run are
/// recognised and ignored.</summary>
public abstract record SupervisorCommand
{
    private SupervisorCommand() { }

    /// <summary>Start the service's process. A service with a pidfile first adopts a live daemon that owns it (its
    /// start time checked against the file's); otherwise the command is spawned. Answer with
    /// <see cref="SupervisorMachine.Launched"/> or <see cref="SupervisorMachine.LaunchFailed"/>.</summary>
    public sealed record Launch(string Service, int Run, ServiceDefinition Definition) : SupervisorCommand;

    /// <summary>A forking service's start command exited 0: find and watch the live process that owns
    /// <paramref name="PidFile"/>. Answer with <see cref="SupervisorMachine.PidFileRead"/>.</summary>
    public sealed record ReadPidFile(string Service, int Run, string PidFile) : SupervisorCommand;

    /// <summary>kill(2) the process, or with <paramref name="Group"/> its whole process group.</summary>
    public sealed record Signal(string Service, int Pid, int Number, bool Group) : SupervisorCommand
    {
        public override string ToString() => $"signal {Service} {Pid} {SignalNames.Name(Number)}{(Group ? " group" : string.Empty)}";
    }

    /// <summary>Run one API check, bounded by its timeout. Answer with <see cref="SupervisorMachine.CheckCompleted"/>.</summary>
    public sealed record RunCheck(string Service, int Run, int Check, CheckDefinition Definition) : SupervisorCommand;

    /// <summary>The run's checks are over: abandon (and kill) any still in flight.</summary>
    public sealed record CancelChecks(string Service, int Run) : SupervisorCommand;

    /// <summary>Open the NOTIFY_SOCKET the service's processes will be handed (readiness or heartbeats by
    /// sd_notify); its datagrams come back as <see cref="SupervisorMachine.Notified"/>.</summary>
    public sealed record OpenNotify(string Service, ServiceDefinition Definition) : SupervisorCommand;

    /// <summary>Close the service's NOTIFY_SOCKET.</summary>
    public sealed record CloseNotify(string Service) : SupervisorCommand;

    /// <summary>Register the process as a heartbeat client of the registry (its WATCHDOG=1 datagrams are its beats);
    /// its hung event comes back as <see cref="SupervisorMachine.ClientHung"/>.</summary>
    public sealed record WatchHeartbeats(string Service, int Pid, TimeSpan Interval) : SupervisorCommand;

    /// <summary>Unregister what <see cref="WatchHeartbeats"/> registered.</summary>
    public sealed record UnwatchHeartbeats(string Service) : SupervisorCommand;

    /// <summary>One WATCHDOG=1: a beat of the service's heartbeat client.</summary>
    public sealed record Beat(string Service) : SupervisorCommand;

    /// <summary>Publish an event on the node's event stream.</summary>
    public sealed record Publish(ServiceEvent Event) : SupervisorCommand
    {
        public override string ToString() => $"event {Event.Kind} {Event.Service}";
    }

    /// <summary>A reboot of the node has begun: say so loudly (the services are being stopped in order now).</summary>
    public sealed record RebootStarting(string Reason) : SupervisorCommand;

    /// <summary>Every service is stopped: flush the file systems and stop feeding the hardware watchdog, which then
    /// resets the node.</summary>
    public sealed record RebootNode(string Reason) : SupervisorCommand;

    /// <summary>A service whose escalation is <see cref="EscalationAction.Failover"/> gave up: hand the node's role
    /// to the peer. The consumer is the pair's failover machine (level 3); until the pair exists, the configuration
    /// refuses this escalation.</summary>
    public sealed record RequestFailover(string Service, string Reason) : SupervisorCommand;

    /// <summary>The service left the configuration and has no process: release what the host kept for it.</summary>
    public sealed record Forget(string Service) : SupervisorCommand;
}

/// <summary>How a launched process came to be watched.</summary>
public enum LaunchOrigin
{
    /// <summary>Spawned by apphbd (for a pidfile service: its start command, whose daemon writes the pidfile).</summary>
    Spawned,
    /// <summary>A live daemon that owns the service's pidfile, adopted instead of starting another.</summary>
    Adopted,
}
