using AppHb.Core.Events;
using AppHb.Core.Scheduling;

namespace AppHb.Core.Supervision;

/// <summary>Level 2's decisions, as a pure machine: inputs in (an exit, a launch's outcome, a check result, an
/// sd_notify datagram, a hung heartbeat, a deadline, a control request, a reload), <see cref="SupervisorCommand"/>s out
/// (launch, signal, run a check, publish an event, reboot the node, ...).
/// <para>It starts the wanted services in dependency order, each once what it requires is ready; respawns a service
/// that exits, as its <see cref="RestartPolicy"/> says, after stopping what requires it; runs the checks' thresholds
/// per episode and their actions; stops with a signal, then SIGKILL at the stop timeout; applies reload diffs; and
/// escalates (give up, reboot through the watchdog, fail over to the peer).</para>
/// <para>Not thread-safe: the host serialises every input under one lock, runs each command at once in order
/// (<see cref="TryTakeCommand"/>), and reports results as further inputs. Time comes from the injected
/// <see cref="TimeProvider"/> only; deadlines are served through <see cref="NextDue"/> and <see cref="ExpireDue"/>, the
/// way the heartbeat registry's are, so a test drives it step by step with no timer and no thread.</para></summary>
public sealed class SupervisorMachine
{
    /// <summary>The instance name under which a notify heartbeat is registered.</summary>
    public const string NotifyHeartbeatInstance = "sd_notify";

    private static readonly TimeSpan PidFilePollStep = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan CheckPauseWhileStarting = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(2);

    private readonly TimeProvider _time;
    private readonly Timestamps _timestamps;
    private readonly Dictionary<string, SupervisedService> _services = new(StringComparer.Ordinal);
    private readonly DeadlineQueue<SupervisorTimer> _deadlines = new();
    // Commands, and deferred steps (Action) that run when the host reaches them; what a deferred step emits takes its
    // place in the queue. A respawn puts everything but the launch itself after the launch this way.
    private readonly LinkedList<object> _queue = new();
    private LinkedListNode<object>? _insertBefore;
    private bool _inDeferredStep;
    private readonly HashSet<string> _inactiveGroups = new(StringComparer.Ordinal);
    private readonly SupervisorTimer _shutdownTimer = new(SupervisorTimerKind.ShutdownStep, null, -1);
    private ServiceGraph _graph;
    private int _lastRun;
    private bool _booted;
    private Shutdown? _shutdown;

    /// <exception cref="ServiceGraphException">The services' requirements do not form a valid graph.</exception>
    public SupervisorMachine(TimeProvider time, IReadOnlyList<ServiceDefinition> services)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(services);
        _time = time;
        _timestamps = new Timestamps(time);
        _graph = BuildGraph(services);
        foreach (var definition in services)
        {
            _services[definition.Name] = new SupervisedService(definition, time.TimestampFrequency, time.GetTimestamp());
        }
    }

    /// <summary>The services, in start order.</summary>
    public IReadOnlyList<SupervisedService> Services =>
        _graph.StartOrder.Where(_services.ContainsKey).Select(name => _services[name]).ToList();

    /// <summary>Every wanted service (of an active group) is running or has settled into a final state: what
    /// READY=1 to systemd waits for.</summary>
    public bool IsSettled => _services.Values.All(s => !s.Wanted || !IsGroupActive(s)
        || s.State is ServiceRunState.Running or ServiceRunState.Failed or ServiceRunState.Exited or ServiceRunState.Stopped);

    /// <summary>An orderly stop of every service (apphbd stopping, or the node rebooting) is under way or done.</summary>
    public bool IsShuttingDown => _shutdown is not null;

    /// <summary>The orderly stop has stopped every service (or given up waiting on one past its stop timeout).</summary>
    public bool IsShutdownComplete => _shutdown is { Complete: true };

    /// <summary>A critical failure is rebooting the node.</summary>
    public bool IsRebooting => _shutdown?.RebootReason is not null;

    /// <summary>The earliest pending deadline (<see cref="long.MaxValue"/> when none): call <see cref="ExpireDue"/> then.</summary>
    public long NextDue => _deadlines.NextDue;

    /// <summary>The next command to run, oldest first. Drain it to the end after every input: part of an input's
    /// work (an exit's events, say) may be deferred until the host has run an earlier command (the respawn).</summary>
    public bool TryTakeCommand(out SupervisorCommand command)
    {
        while (_queue.First is { } first)
        {
            _queue.RemoveFirst();
            if (first.Value is SupervisorCommand next)
            {
                command = next;
                return true;
            }

            _inDeferredStep = true;
            _insertBefore = _queue.First;
            try
            {
                ((Action)first.Value)();
            }
            finally
            {
                _inDeferredStep = false;
                _insertBefore = null;
            }
        }

        command = null!;
        return false;
    }

    /// <exception cref="KeyNotFoundException">No such service; the message lists the configured ones.</exception>
    public SupervisedService Find(string name) => _services.TryGetValue(name, out var service)
        ? service
        : throw new KeyNotFoundException($"no service named \"{name}\"; configured: {string.Join(", ", _services.Keys.Order(StringComparer.Ordinal))}");

    public bool TryFind(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SupervisedService? service) =>
        _services.TryGetValue(name, out service);

    /// <summary>Whether <paramref name="group"/>'s services may run on this node now.</summary>
    public bool IsGroupActive(string group) => !_inactiveGroups.Contains(group);

    // ---- inputs: start, results of commands, the world ----

    /// <summary>Opens the notify sockets and starts what can start.</summary>
    public void Boot()
    {
        if (_booted)
        {
            return;
        }

        _booted = true;
        foreach (var name in _graph.StartOrder)
        {
            OpenNotify(_services[name]);
        }

        Reconcile();
    }

    /// <summary>The process of <see cref="SupervisorCommand.Launch"/> runs.</summary>
    public void Launched(string service, int run, int pid, LaunchOrigin origin)
    {
        if (!IsCurrent(service, run, out var s) || s.State != ServiceRunState.Starting || s.HasProcess)
        {
            // Nobody wants this process any more (it cannot happen while the host answers at once; never leak it).
            Emit(new SupervisorCommand.Signal(service, pid, SignalNames.SIGKILL, origin == LaunchOrigin.Spawned));
            return;
        }

        var definition = s.Definition;
        s.Pid = pid;
        s.Adopted = origin == LaunchOrigin.Adopted;
        s.Launching = origin == LaunchOrigin.Spawned && definition.PidFile is not null;
        if (s.Adopted)
        {
            Publish(ServiceEventKind.Adopted, s, $"adopted the running process from {definition.PidFile}");
            BeginRun(s);
            return;
        }

        Publish(ServiceEventKind.Started, s, s.Launching
            ? $"started {definition.Command[0]}; waiting for it to write {definition.PidFile}"
            : $"started {definition.Command[0]}");
        if (!s.Launching)
        {
            BeginRun(s);
        }
    }

    /// <summary><see cref="SupervisorCommand.Launch"/> could not start anything: it counts as an exit (code 127,
    /// as a shell says of a command it cannot run).</summary>
    public void LaunchFailed(string service, int run, string message)
    {
        if (!IsCurrent(service, run, out var s) || s.State != ServiceRunState.Starting || s.HasProcess)
        {
            return;
        }

        Publish(ServiceEventKind.StartFailed, s, $"cannot start: {message}", failure: true);
        s.SetLastExit("start failed: " + message);
        ApplyDecision(s, s.Tracker.Exited(ProcessExit.Code(127), Now));
        Reconcile();
    }

    /// <summary>The answer to <see cref="SupervisorCommand.ReadPidFile"/>: the adopted pid, or null and why not.</summary>
    public void PidFileRead(string service, int run, int? pid, string reason)
    {
        if (!IsCurrent(service, run, out var s) || s.State != ServiceRunState.Starting || s.HasProcess)
        {
            if (pid is { } stray)
            {
                Emit(new SupervisorCommand.Signal(service, stray, SignalNames.SIGKILL, Group: false));
            }

            return;
        }

        if (pid is { } found)
        {
            s.Pid = found;
            s.Adopted = true;
            Publish(ServiceEventKind.Adopted, s, $"its daemon wrote {s.Definition.PidFile}");
            BeginRun(s);
            return;
        }

        // Some daemons write the pidfile just after their parent exits: look again a few times over the stop timeout.
        var attempt = s.Timer.Kind == SupervisorTimerKind.PidFilePoll ? s.Timer.Argument : 0;
        if (attempt * PidFilePollStep < s.Definition.StopTimeout)
        {
            Arm(s.Timer, SupervisorTimerKind.PidFilePoll, PidFilePollStep, s.Run, attempt + 1);
            return;
        }

        Disarm(s.Timer);
        Publish(ServiceEventKind.StartFailed, s, $"the start command exited 0 but no live process owns the pidfile: {reason}", failure: true);
        ApplyDecision(s, s.Tracker.Exited(ProcessExit.Code(1), Now));
        Reconcile();
    }

    /// <summary>A watched process ended (learnt from its pidfd the moment it happened).</summary>
    public void Exited(string service, int run, int pid, ProcessExit exit)
    {
        if (!IsCurrent(service, run, out var s) || s.Pid != pid)
        {
            return;
        }

        if (s.Launching && s.State == ServiceRunState.Starting)
        {
            s.Launching = false;
            if (exit.ExitCode == 0)
            {
                // The start command did its job: its daemon should own the pidfile now.
                s.Pid = null;
                Disarm(s.Timer);
                Emit(new SupervisorCommand.ReadPidFile(s.Name, s.Run, s.Definition.PidFile!));
                return;
            }
        }

        s.Pid = null;
        s.Launching = false;
        EndRun(s);
        s.SetLastExit(exit);
        if (s.State != ServiceRunState.Stopping && _shutdown is null && TryRespawnAtOnce(s, pid, exit))
        {
            return;
        }

        if (!s.Adopted)
        {
            // Whatever the main process left in its group (workers, a shell's children) goes with it.
            Emit(new SupervisorCommand.Signal(s.Name, pid, SignalNames.SIGKILL, Group: true));
        }

        if (s.State == ServiceRunState.Stopping)
        {
            Publish(ServiceEventKind.Stopped, s, $"stopped ({s.StopReason}): {exit}", pid: pid);
            var after = s.AfterStop;
            s.AfterStop = AfterStop.Nothing;
            FinishStop(s, after, s.StopReason);
            Reconcile();
            return;
        }

        Publish(ServiceEventKind.Exited, s, $"exited unexpectedly: {exit}", failure: true, pid: pid);
        StopDependents(s, $"{s.Name} exited");
        if (_shutdown is not null)
        {
            // Everything is being stopped: a death now is reported, never restarted or escalated (a reboot in the
            // middle of an operator's stop of apphbd would surprise everyone).
            SetState(s, ServiceRunState.Stopped);
            return;
        }

        ApplyDecision(s, s.Tracker.Exited(exit, Now));
        Reconcile();
    }

    /// <summary>The hot path of level 2: a service died and its policy says "again, now". The launch is the first
    /// command; the group's kill, the events, what requires it and the rest of the bookkeeping follow once the host
    /// has spawned the replacement (measured: the bookkeeping before it cost a quarter of a respawn's latency).</summary>
    private bool TryRespawnAtOnce(SupervisedService s, int pid, ProcessExit exit)
    {
        if (!s.Wanted || !IsGroupActive(s) || s.Definition.Requires.Any(r => _services[r].State != ServiceRunState.Running))
        {
            return false;
        }

        var decision = s.Tracker.Exited(exit, Now);
        if (decision is not RestartDecision.Restart { After.Ticks: 0 })
        {
            // Not immediate after all: the ordinary path, with the decision already taken.
            Aftermath(s, pid, exit, decision);
            return true;
        }

        s.Restarts++;
        var restarts = s.Restarts;
        // Read before the launch: the deferred step runs after it, when the service already has its new process.
        var adopted = s.Adopted;
        Launch(s);
        Defer(() =>
        {
            if (!adopted)
            {
                Emit(new SupervisorCommand.Signal(s.Name, pid, SignalNames.SIGKILL, Group: true));
            }

            Publish(ServiceEventKind.Exited, s, $"exited unexpectedly: {exit}", failure: true, pid: pid);
            StopDependents(s, $"{s.Name} exited");
            Publish(ServiceEventKind.Restarting, s, $"restarting now (restart {restarts})", withoutPid: true);
            Reconcile();
        });
        return true;
    }

    /// <summary>An unexpected exit whose restart is not immediate: events, dependents, then the decision.</summary>
    private void Aftermath(SupervisedService s, int pid, ProcessExit exit, RestartDecision decision)
    {
        if (!s.Adopted)
        {
            Emit(new SupervisorCommand.Signal(s.Name, pid, SignalNames.SIGKILL, Group: true));
        }

        Publish(ServiceEventKind.Exited, s, $"exited unexpectedly: {exit}", failure: true, pid: pid);
        StopDependents(s, $"{s.Name} exited");
        ApplyDecision(s, decision);
        Reconcile();
    }

    /// <summary>The answer to <see cref="SupervisorCommand.RunCheck"/>.</summary>
    public void CheckCompleted(string service, int run, int check, CheckOutcome outcome)
    {
        if (!IsCurrent(service, run, out var s) || check < 0 || check >= s.Checks.Count || !s.ChecksActive)
        {
            return;
        }

        var state = s.Checks[check];
        state.InFlight = false;
        OnCheckResult(s, state, outcome);
        if (s.Run == run && s.ChecksActive)
        {
            var interval = state.Definition.Interval;
            var pause = s.State == ServiceRunState.Starting && interval > CheckPauseWhileStarting ? CheckPauseWhileStarting : interval;
            Arm(state.Timer, SupervisorTimerKind.Check, pause, s.Run);
        }
    }

    /// <summary>An sd_notify datagram arrived on the service's NOTIFY_SOCKET.</summary>
    public void Notified(string service, NotifyMessage message)
    {
        if (!_services.TryGetValue(service, out var s) || !s.HasProcess || s.Launching)
        {
            return;
        }

        if (message.Status is not null)
        {
            s.StatusText = message.Status;
        }

        if (message.Ready && s.State == ServiceRunState.Starting && s.Definition.Readiness.Kind == ReadinessKind.Notify)
        {
            MarkReady(s, "sent READY=1");
        }

        if (message.Watchdog && s.HeartbeatWatched)
        {
            Emit(new SupervisorCommand.Beat(s.Name));
        }

        if (message.WatchdogTrigger)
        {
            HeartbeatLost(s, "sent WATCHDOG=trigger");
        }
    }

    /// <summary>A heartbeat client went hung. It is the service's heartbeat when it is registered under the
    /// service's name: an <c>AppHb.Client</c> (any instance) for a client heartbeat, the <c>sd_notify</c> instance
    /// apphbd registered for a notify heartbeat.</summary>
    public void ClientHung(string name, string instance, TimeSpan silentFor)
    {
        if (_services.TryGetValue(name, out var s) && s.Definition.Heartbeat is { } heartbeat
            && (heartbeat.Source == HeartbeatSource.Notify) == (instance == NotifyHeartbeatInstance))
        {
            HeartbeatLost(s, $"no heartbeat for {silentFor.TotalMilliseconds:0} ms (interval {heartbeat.Interval.TotalMilliseconds:0} ms)");
        }
    }

    /// <summary>Something the host could not do for a service that the operator must hear about (it cannot watch a
    /// pid, cannot register the heartbeats): published as an alert.</summary>
    public void ReportProblem(string service, string message)
    {
        if (_services.TryGetValue(service, out var s))
        {
            Publish(ServiceEventKind.Alert, s, message, failure: true);
        }
    }

    /// <summary>Acts on every deadline that has passed, then returns the next (<see cref="long.MaxValue"/> if none).</summary>
    public long ExpireDue()
    {
        var now = Now;
        while (_deadlines.TryDequeueDue(now, out var timer, out var version, out _))
        {
            if (!timer.Armed || version != timer.Version)
            {
                continue;
            }

            timer.Armed = false;
            Fire(timer);
        }

        return _deadlines.NextDue;
    }

    // ---- inputs: the operator ----

    /// <summary>apphbctl start: want it, forgive its restart history, and start it once what it requires is ready.</summary>
    /// <exception cref="KeyNotFoundException">No such service.</exception>
    /// <exception cref="InvalidOperationException">apphbd is stopping or the node is rebooting.</exception>
    public void Start(string name)
    {
        var s = Find(name);
        RefuseWhileShuttingDown(name);
        s.Wanted = true;
        if (s.State is ServiceRunState.Failed or ServiceRunState.Exited or ServiceRunState.Stopped or ServiceRunState.Backoff)
        {
            Forgive(s);
        }

        Reconcile();
    }

    /// <summary>apphbctl stop: not wanted; what requires it stops first, in reverse order.</summary>
    /// <exception cref="KeyNotFoundException">No such service.</exception>
    public void Stop(string name)
    {
        var s = Find(name);
        s.Wanted = false;
        StopDependents(s, $"{name} is being stopped");
        Stop(s, AfterStop.Nothing, "stopped by apphbctl");
    }

    /// <summary>apphbctl restart: stop it (and what requires it), then start it again; not counted as a failure.</summary>
    /// <exception cref="KeyNotFoundException">No such service.</exception>
    /// <exception cref="InvalidOperationException">apphbd is stopping or the node is rebooting.</exception>
    public void Restart(string name)
    {
        var s = Find(name);
        RefuseWhileShuttingDown(name);
        s.Wanted = true;
        StopDependents(s, $"{name} is restarting");
        if (s.HasProcess)
        {
            Stop(s, AfterStop.Restart, "restart requested by apphbctl");
        }
        else
        {
            Forgive(s);
            Reconcile();
        }
    }

    /// <summary>No service of <paramref name="group"/> has a process any more (after it was made inactive): what the
    /// pair waits for before it releases the service IP.</summary>
    public bool IsGroupStopped(string group) => _services.Values.All(s => s.Definition.ResourceGroup != group
        || (!s.HasProcess && s.State is not (ServiceRunState.Starting or ServiceRunState.Stopping)));

    /// <summary>Whether the stop of <paramref name="name"/> (and of what requires it) is over: none has a process.</summary>
    public bool IsStopComplete(string name)
    {
        if (!_services.TryGetValue(name, out var s))
        {
            return true;
        }

        if (s.HasProcess || s.State == ServiceRunState.Stopping)
        {
            return false;
        }

        return s.Removed || _graph.DependentsOf(name).All(d => !_services.TryGetValue(d, out var dependent) || !dependent.HasProcess);
    }

    /// <summary>Applies a new set of definitions: unchanged services keep running, changed ones restart with the new
    /// definition (and what requires them after them), removed ones stop and leave, added ones start.</summary>
    /// <returns>One line per change, for the operator.</returns>
    /// <exception cref="ServiceGraphException">The new requirements do not form a valid graph: nothing changed.</exception>
    public IReadOnlyList<string> Reload(IReadOnlyList<ServiceDefinition> definitions)
    {
        ArgumentNullException.ThrowIfNull(definitions);
        var graph = BuildGraph(definitions);
        var plan = ReloadPlan.Compute(_services.Values.Where(s => !s.Removed).Select(s => s.Definition), definitions);
        var lines = new List<string>();
        foreach (var name in plan.Removed)
        {
            var s = _services[name];
            s.Wanted = false;
            s.Removed = true;
            Publish(ServiceEventKind.Removed, s, "removed from the configuration");
            Stop(s, AfterStop.Remove, "removed by reload");
            lines.Add($"{name}: removed, stopping");
        }

        foreach (var definition in plan.Changed)
        {
            var s = _services[definition.Name];
            s.Replacement = definition;
            Publish(ServiceEventKind.Changed, s, "definition changed; restarting with the new one");
            StopDependents(s, $"{definition.Name} changed");
            Stop(s, AfterStop.Replace, "changed by reload");
            lines.Add($"{definition.Name}: changed, restarting");
        }

        _graph = graph;
        foreach (var definition in plan.Added)
        {
            var s = new SupervisedService(definition, _time.TimestampFrequency, Now);
            _services[definition.Name] = s;
            OpenNotify(s);
            Publish(ServiceEventKind.Added, s, "added by reload");
            lines.Add($"{definition.Name}: added, starting");
        }

        Reconcile();
        return lines;
    }

    /// <summary>Activates or deactivates a resource group on this node (the pair's role decides, level 3): an inactive
    /// group's services stop, in reverse dependency order, and wait; an active group's start in order.</summary>
    public void SetGroupActive(string group, bool active)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (active)
        {
            if (_inactiveGroups.Remove(group))
            {
                Reconcile();
            }

            return;
        }

        if (!_inactiveGroups.Add(group))
        {
            return;
        }

        foreach (var name in _graph.StopOrder)
        {
            var s = _services[name];
            if (s.Definition.ResourceGroup != group)
            {
                continue;
            }

            if (s.HasProcess || s.State == ServiceRunState.Starting)
            {
                Stop(s, AfterStop.Nothing, $"group {group} is no longer active on this node");
            }
            else if (s.State == ServiceRunState.Backoff)
            {
                Disarm(s.Timer);
                SetState(s, ServiceRunState.Waiting);
            }
        }

        Reconcile();
    }

    /// <summary>Stops every service in reverse dependency order, one after another, each within its stop timeout
    /// (plus a grace): apphbd is stopping. Nothing starts again.</summary>
    public void BeginShutdown(string reason) => BeginShutdown(reason, rebootReason: null);

    // ---- the machine ----

    private long Now => _time.GetTimestamp();

    private bool IsGroupActive(SupervisedService s) => !_inactiveGroups.Contains(s.Definition.ResourceGroup);

    private bool IsCurrent(string service, int run, out SupervisedService s) =>
        _services.TryGetValue(service, out s!) && s.Run == run && run != 0;

    private void RefuseWhileShuttingDown(string name)
    {
        if (_shutdown is not null)
        {
            throw new InvalidOperationException(IsRebooting
                ? $"{name}: not started: the node is rebooting ({_shutdown.RebootReason})"
                : $"{name}: not started: apphbd is stopping");
        }
    }

    /// <summary>An operator's start forgives the restart history: the policy starts counting afresh.</summary>
    private void Forgive(SupervisedService s)
    {
        s.Tracker = new RestartTracker(s.Definition.Restart, _time.TimestampFrequency);
        Disarm(s.Timer);
        SetState(s, ServiceRunState.Waiting);
    }

    private void OpenNotify(SupervisedService s)
    {
        var definition = s.Definition;
        if (definition.Readiness.Kind == ReadinessKind.Notify || definition.Heartbeat?.Source == HeartbeatSource.Notify)
        {
            Emit(new SupervisorCommand.OpenNotify(s.Name, definition));
        }
    }

    private static bool UsesNotify(ServiceDefinition definition) =>
        definition.Readiness.Kind == ReadinessKind.Notify || definition.Heartbeat?.Source == HeartbeatSource.Notify;

    /// <summary>Starts every wanted service whose requirements all run, in dependency order.</summary>
    private void Reconcile()
    {
        if (!_booted || _shutdown is not null)
        {
            return;
        }

        var now = Now;
        foreach (var name in _graph.StartOrder)
        {
            var s = _services[name];
            if (!s.Wanted || s.State is not (ServiceRunState.Waiting or ServiceRunState.Stopped or ServiceRunState.Backoff))
            {
                continue;
            }

            if (s.State == ServiceRunState.Backoff && now < s.NotBefore)
            {
                continue;
            }

            var waitingFor = !IsGroupActive(s)
                ? $"group {s.Definition.ResourceGroup}"
                : s.Definition.Requires.FirstOrDefault(r => _services[r].State != ServiceRunState.Running);
            if (waitingFor is not null)
            {
                if (s.State != ServiceRunState.Waiting)
                {
                    SetState(s, ServiceRunState.Waiting);
                }

                s.WaitingFor = waitingFor;
                continue;
            }

            Launch(s);
        }
    }

    private void Launch(SupervisedService s)
    {
        var now = Now;
        s.Run = ++_lastRun;
        s.WaitingFor = null;
        s.StatusText = null;
        s.StartedAt = now;
        s.Tracker.Started(now);
        Disarm(s.Timer);
        SetState(s, ServiceRunState.Starting);
        Emit(new SupervisorCommand.Launch(s.Name, s.Run, s.Definition));
    }

    /// <summary>The service's own process runs: start its checks and its readiness.</summary>
    private void BeginRun(SupervisedService s)
    {
        var definition = s.Definition;
        s.ChecksActive = s.Checks.Count > 0;
        for (var i = 0; i < s.Checks.Count; i++)
        {
            // A new process starts a new episode: the last one's failures were acted on already. A probe-ready
            // service is probed at once; other checks wait one interval for the service to come up.
            var check = s.Checks[i];
            check.ConsecutiveFailures = 0;
            check.InFlight = definition.Readiness.Kind == ReadinessKind.Probe;
            if (check.InFlight)
            {
                Emit(new SupervisorCommand.RunCheck(s.Name, s.Run, i, check.Definition));
            }
            else
            {
                Arm(check.Timer, SupervisorTimerKind.Check, check.Definition.Interval, s.Run);
            }
        }

        switch (definition.Readiness.Kind)
        {
            case ReadinessKind.None:
                MarkReady(s, "ready (readiness: none)");
                break;
            case ReadinessKind.Delay:
                Arm(s.Timer, SupervisorTimerKind.Readiness, definition.Readiness.Delay, s.Run);
                break;
        }
    }

    private void MarkReady(SupervisedService s, string how)
    {
        SetState(s, ServiceRunState.Running);
        Publish(ServiceEventKind.Ready, s, how);
        if (s.Definition.Heartbeat is { Source: HeartbeatSource.Notify } heartbeat && s.Pid is { } pid)
        {
            s.HeartbeatWatched = true;
            Emit(new SupervisorCommand.WatchHeartbeats(s.Name, pid, heartbeat.Interval));
        }

        Reconcile();
    }

    private void EndRun(SupervisedService s)
    {
        if (s.ChecksActive)
        {
            s.ChecksActive = false;
            foreach (var check in s.Checks)
            {
                Disarm(check.Timer);
                check.InFlight = false;
            }

            Emit(new SupervisorCommand.CancelChecks(s.Name, s.Run));
        }

        if (s.HeartbeatWatched)
        {
            s.HeartbeatWatched = false;
            Emit(new SupervisorCommand.UnwatchHeartbeats(s.Name));
        }

        Disarm(s.Timer);
    }

    private void Stop(SupervisedService s, AfterStop after, string reason)
    {
        if (!s.HasProcess)
        {
            // Nothing ran (or it is between its start command and its pidfile), so nothing failed: a counted
            // restart has nothing to count.
            EndRun(s);
            s.StopReason = reason;
            FinishStop(s, after == AfterStop.RestartCounted ? AfterStop.Nothing : after, reason);
            return;
        }

        // A later, stronger request replaces a pending one (a removal wins over a restart).
        if (s.State != ServiceRunState.Stopping || after > s.AfterStop)
        {
            s.AfterStop = after;
            s.StopReason = reason;
        }

        if (s.State == ServiceRunState.Stopping)
        {
            return;
        }

        EndRun(s);
        SetState(s, ServiceRunState.Stopping);
        var pid = s.Pid!.Value;
        var group = !s.Adopted;
        Emit(new SupervisorCommand.Signal(s.Name, pid, s.Definition.StopSignal, group));
        // A stopped (SIGSTOP) process cannot act on the stop signal until it is continued.
        Emit(new SupervisorCommand.Signal(s.Name, pid, SignalNames.SIGCONT, group));
        Arm(s.Timer, SupervisorTimerKind.StopTimeout, s.Definition.StopTimeout, s.Run, pid);
    }

    private void StopDependents(SupervisedService s, string reason)
    {
        foreach (var name in _graph.DependentsOf(s.Name).Reverse())
        {
            if (!_services.TryGetValue(name, out var dependent))
            {
                continue;
            }

            if (dependent.HasProcess)
            {
                Stop(dependent, AfterStop.Nothing, reason);
            }
            else if (dependent.State is ServiceRunState.Backoff or ServiceRunState.Starting)
            {
                // Between its start command and its pidfile, or waiting out a backoff: start again after s.
                EndRun(dependent);
                SetState(dependent, ServiceRunState.Waiting);
            }
        }
    }

    /// <summary>What a stop leads to once the service has no process: it just exited, or it had none.</summary>
    private void FinishStop(SupervisedService s, AfterStop after, string reason)
    {
        switch (after)
        {
            case AfterStop.RestartCounted:
                ApplyDecision(s, s.Tracker.Exited(ProcessExit.KilledBy(s.Definition.StopSignal), Now));
                break;
            case AfterStop.Escalate:
                Escalate(s, s.Definition.Restart.Escalation, reason);
                break;
            case AfterStop.Remove:
                SetState(s, ServiceRunState.Stopped);
                if (UsesNotify(s.Definition))
                {
                    Emit(new SupervisorCommand.CloseNotify(s.Name));
                }

                _services.Remove(s.Name);
                Emit(new SupervisorCommand.Forget(s.Name));
                break;
            case AfterStop.Replace:
                Replace(s);
                break;
            default:
                // A service that gave up or exited for good keeps saying so.
                if (s.State is not (ServiceRunState.Failed or ServiceRunState.Exited))
                {
                    SetState(s, s.Wanted ? ServiceRunState.Waiting : ServiceRunState.Stopped);
                }

                break;
        }

        if (_shutdown is { Current: { } current } && current == s)
        {
            StepShutdown();
        }
    }

    private void Replace(SupervisedService s)
    {
        if (s.Replacement is { } definition)
        {
            if (UsesNotify(s.Definition))
            {
                Emit(new SupervisorCommand.CloseNotify(s.Name));
            }

            s.Redefine(definition);
            s.Replacement = null;
            OpenNotify(s);
        }

        s.Wanted = true;
        SetState(s, ServiceRunState.Waiting);
    }

    private void ApplyDecision(SupervisedService s, RestartDecision decision)
    {
        switch (decision)
        {
            case RestartDecision.Restart restart:
                s.Restarts++;
                s.NotBefore = Now + _timestamps.ToTicks(restart.After);
                SetState(s, ServiceRunState.Backoff);
                Publish(ServiceEventKind.Restarting, s, restart.After == TimeSpan.Zero
                    ? $"restarting now (restart {s.Restarts})"
                    : $"restarting in {restart.After.TotalMilliseconds:0} ms (restart {s.Restarts}, backoff)");
                if (restart.After > TimeSpan.Zero)
                {
                    Arm(s.Timer, SupervisorTimerKind.Backoff, restart.After, s.Run);
                }

                break;
            case RestartDecision.StayStopped stay:
                s.Wanted = false;
                SetState(s, ServiceRunState.Exited);
                Publish(ServiceEventKind.Stopped, s, $"not restarted: {stay.Reason}");
                break;
            case RestartDecision.Escalate escalate:
                Escalate(s, escalate.Action, escalate.Reason);
                break;
        }
    }

    private void Escalate(SupervisedService s, EscalationAction action, string reason)
    {
        s.Wanted = false;
        SetState(s, ServiceRunState.Failed);
        Publish(ServiceEventKind.GaveUp, s, $"gave up: {reason}", failure: true);
        if (action == EscalationAction.Failover)
        {
            Emit(new SupervisorCommand.RequestFailover(s.Name, reason));
        }
        else if (action == EscalationAction.Reboot || s.Definition.Critical)
        {
            BeginReboot($"service {s.Name}{(s.Definition.Critical ? " (critical)" : string.Empty)} failed: {reason}");
        }
    }

    /// <summary>The last resort: stop the services in order, then stop feeding the watchdog so the hardware resets
    /// the node. Loud first, so the reason is in the journal before the reset.</summary>
    private void BeginReboot(string reason)
    {
        if (IsRebooting)
        {
            return;
        }

        Emit(new SupervisorCommand.RebootStarting(reason));
        Emit(new SupervisorCommand.Publish(new ServiceEvent(ServiceEventKind.Reboot, "(node)", null, $"rebooting through the watchdog: {reason}", IsFailure: true) { At = _time.GetUtcNow() }));
        if (_shutdown is { } running)
        {
            // apphbd was stopping already: finish that stop, then reboot.
            running.RebootReason = reason;
            if (running.Complete)
            {
                Emit(new SupervisorCommand.RebootNode(reason));
            }

            return;
        }

        BeginShutdown("the node is rebooting", reason);
    }

    private void BeginShutdown(string reason, string? rebootReason)
    {
        if (_shutdown is not null)
        {
            return;
        }

        foreach (var s in _services.Values)
        {
            s.Wanted = false;
        }

        _shutdown = new Shutdown(new Queue<string>(_graph.StopOrder), reason) { RebootReason = rebootReason };
        StepShutdown();
    }

    /// <summary>Stops the next service of the shutdown that has a process; each gets its stop timeout and a grace
    /// before the next one starts stopping regardless.</summary>
    private void StepShutdown()
    {
        var shutdown = _shutdown!;
        shutdown.Current = null;
        Disarm(_shutdownTimer);
        while (shutdown.Pending.TryDequeue(out var name))
        {
            if (!_services.TryGetValue(name, out var s))
            {
                continue;
            }

            Stop(s, AfterStop.Nothing, shutdown.Reason);
            if (s.HasProcess)
            {
                shutdown.Current = s;
                Arm(_shutdownTimer, SupervisorTimerKind.ShutdownStep, s.Definition.StopTimeout + ShutdownGrace, run: 0);
                return;
            }
        }

        shutdown.Complete = true;
        if (shutdown.RebootReason is { } reboot)
        {
            Emit(new SupervisorCommand.RebootNode(reboot));
        }
    }

    private void HeartbeatLost(SupervisedService s, string reason)
    {
        if (s.State is not (ServiceRunState.Running or ServiceRunState.Starting) || s.Definition.Heartbeat is not { } heartbeat)
        {
            return;
        }

        Publish(ServiceEventKind.HeartbeatLost, s, reason, failure: true);
        Act(s, heartbeat.Action, $"heartbeat lost: {reason}");
    }

    private void OnCheckResult(SupervisedService s, CheckState check, CheckOutcome result)
    {
        check.Runs++;
        check.LastPassed = result.Passed;
        check.LastMessage = result.Message;
        check.LastDurationMs = result.Duration.TotalMilliseconds;
        if (result.Passed)
        {
            if (check.ConsecutiveFailures >= check.Definition.Failures)
            {
                Publish(ServiceEventKind.CheckRecovered, s, $"check {check.Definition.Name} passes again: {result.Message}");
            }

            check.ConsecutiveFailures = 0;
            if (s.State == ServiceRunState.Starting && s.Definition.Readiness.Kind == ReadinessKind.Probe && !s.Launching)
            {
                MarkReady(s, $"check {check.Definition.Name} passed: {result.Message}");
            }

            return;
        }

        check.Failures++;
        if (s.State != ServiceRunState.Running)
        {
            // A service that is still starting is not failing yet; its readiness (or its absence) speaks for it.
            return;
        }

        check.ConsecutiveFailures++;
        if (check.ConsecutiveFailures == check.Definition.Failures)
        {
            var reason = $"check {check.Definition.Name} failed {check.ConsecutiveFailures} time(s) in a row: {result.Message}";
            Publish(ServiceEventKind.CheckFailed, s, reason, failure: true);
            Act(s, check.Definition.Action, reason);
        }
    }

    private void Act(SupervisedService s, CheckAction action, string reason)
    {
        switch (action)
        {
            case CheckAction.Restart:
                Stop(s, AfterStop.RestartCounted, reason);
                break;
            case CheckAction.RestartWithDependents:
                StopDependents(s, $"{s.Name} is restarting");
                Stop(s, AfterStop.RestartCounted, reason);
                break;
            case CheckAction.Alert:
                Publish(ServiceEventKind.Alert, s, reason, failure: true);
                break;
            case CheckAction.Escalate:
                StopDependents(s, $"{s.Name} is escalating");
                Stop(s, AfterStop.Escalate, reason);
                break;
        }
    }

    private void Fire(SupervisorTimer timer)
    {
        if (timer.Kind == SupervisorTimerKind.ShutdownStep)
        {
            // The current service outlived its stop timeout and the grace (SIGKILL was sent): move on.
            if (_shutdown is { Complete: false })
            {
                StepShutdown();
            }

            return;
        }

        var s = timer.Service!;
        if (!_services.TryGetValue(s.Name, out var current) || current != s || s.Run != timer.Run)
        {
            return;
        }

        switch (timer.Kind)
        {
            case SupervisorTimerKind.Backoff when s.State == ServiceRunState.Backoff:
                // The timer firing is the end of the backoff, even if it fires a hair before NotBefore by the clock.
                s.NotBefore = 0;
                Reconcile();
                break;
            case SupervisorTimerKind.Readiness when s.State == ServiceRunState.Starting:
                MarkReady(s, $"ready after its {s.Definition.Readiness.Delay.TotalMilliseconds:0} ms readiness delay");
                break;
            case SupervisorTimerKind.StopTimeout when s.State == ServiceRunState.Stopping && s.Pid == timer.Argument:
                Publish(ServiceEventKind.Alert, s, $"did not stop within {s.Definition.StopTimeout.TotalMilliseconds:0} ms of {SignalNames.Name(s.Definition.StopSignal)}: SIGKILL", failure: true);
                Emit(new SupervisorCommand.Signal(s.Name, timer.Argument, SignalNames.SIGKILL, !s.Adopted));
                break;
            case SupervisorTimerKind.PidFilePoll when s.State == ServiceRunState.Starting && !s.HasProcess:
                // The attempt count stays on the (now disarmed) timer: PidFileRead reads it.
                Emit(new SupervisorCommand.ReadPidFile(s.Name, s.Run, s.Definition.PidFile!));
                break;
            case SupervisorTimerKind.Check when s.ChecksActive:
                var check = s.Checks[timer.Check];
                if (!check.InFlight)
                {
                    check.InFlight = true;
                    Emit(new SupervisorCommand.RunCheck(s.Name, s.Run, timer.Check, check.Definition));
                }

                break;
        }
    }

    private void Arm(SupervisorTimer timer, SupervisorTimerKind kind, TimeSpan after, int run, int argument = 0)
    {
        timer.Kind = kind;
        timer.Version++;
        timer.Armed = true;
        timer.Run = run;
        timer.Argument = argument;
        timer.Due = Now + _timestamps.ToTicks(after);
        _deadlines.Schedule(timer, timer.Version, timer.Due);
    }

    private static void Disarm(SupervisorTimer timer)
    {
        if (timer.Armed)
        {
            timer.Armed = false;
            timer.Version++;
        }

        if (timer.Kind == SupervisorTimerKind.PidFilePoll)
        {
            timer.Kind = SupervisorTimerKind.None;
        }
    }

    private void SetState(SupervisedService s, ServiceRunState state)
    {
        s.State = state;
        s.StateSince = Now;
        if (state != ServiceRunState.Waiting)
        {
            s.WaitingFor = null;
        }
    }

    private void Emit(SupervisorCommand command) => Enqueue(command);

    /// <summary>Work that may wait until the host has run the commands emitted so far.</summary>
    private void Defer(Action step) => Enqueue(step);

    private void Enqueue(object item)
    {
        if (_inDeferredStep && _insertBefore is { } next)
        {
            _queue.AddBefore(next, item);
        }
        else
        {
            _queue.AddLast(item);
        }
    }

    private void Publish(ServiceEventKind kind, SupervisedService s, string detail, bool failure = false, int? pid = null, bool withoutPid = false) =>
        Emit(new SupervisorCommand.Publish(new ServiceEvent(kind, s.Name, withoutPid ? null : pid ?? s.Pid, detail, failure) { At = _time.GetUtcNow() }));

    private static ServiceGraph BuildGraph(IReadOnlyList<ServiceDefinition> definitions) =>
        ServiceGraph.Build(definitions.ToDictionary(d => d.Name, d => d.Requires, StringComparer.Ordinal));

    /// <summary>An orderly stop of everything, one service at a time.</summary>
    private sealed class Shutdown(Queue<string> pending, string reason)
    {
        public Queue<string> Pending { get; } = pending;

        public string Reason { get; } = reason;

        public string? RebootReason { get; set; }

        public SupervisedService? Current { get; set; }

        public bool Complete { get; set; }
    }
}
