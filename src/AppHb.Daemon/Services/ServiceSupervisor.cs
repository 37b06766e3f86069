using AppHb.Core.Events;
using AppHb.Core.Heartbeats;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;
using AppHb.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Services;

/// <summary>Level 2: starts the node's services in dependency order, respawns them the moment they die, restarts what
/// requires them, runs their checks, and escalates as their policies say.
/// <para>One lock guards all service state; every input (a pidfd exit on the exit watcher's thread, a check result, a
/// notify datagram, a timer, a control request) takes it, decides, and acts at once. Acting is quick (a posix_spawn, a
/// kill, a timer): there is no queue between an exit and the respawn.</para></summary>
internal sealed class ServiceSupervisor : IHostedService, IDisposable
{
    private static readonly TimeSpan SettleBound = TimeSpan.FromSeconds(30);
    private readonly Lock _gate = new();
    private readonly ApphbdOptions _initial;
    private readonly ConfigurationSource _source;
    private readonly TimeProvider _time;
    private readonly EventStream _events;
    private readonly HeartbeatRegistry _registry;
    private readonly ChildProcessTable _children;
    private readonly WatchdogTickler _tickler;
    private readonly ILogger _logger;
    private readonly Export.ObservedMetrics _metrics;
    private readonly Lazy<HttpClient> _http;
    private readonly CheckProbe _probe;
    private readonly Dictionary<string, SupervisedService> _services = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<ServiceEvent> _unpublished = [];
    private bool _deferring;
    private ServiceGraph _graph = ServiceGraph.Build(new Dictionary<string, IReadOnlyList<string>>());
    private ApphbdOptions _options;
    private TaskCompletionSource _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private EventSubscription? _heartbeatEvents;
    private Task? _heartbeatWatch;
    private bool _rebooting;
    private bool _shuttingDown;

    public ServiceSupervisor(ApphbdOptions options, ConfigurationSource source, TimeProvider time, EventStream events,
        HeartbeatRegistry registry, ChildProcessTable children, WatchdogTickler tickler, Export.ObservedMetrics metrics, ILogger<ServiceSupervisor> logger)
    {
        _metrics = metrics;
        _initial = options;
        _options = options;
        _source = source;
        _time = time;
        _events = events;
        _registry = registry;
        _children = children;
        _tickler = tickler;
        _logger = logger;
        // Only a node with HTTP checks pays for an HTTP stack (a few MB resident).
        _http = new Lazy<HttpClient>(() =>
        {
            var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
            client.DefaultRequestHeaders.UserAgent.ParseAdd("apphbd/" + Status.StatusReporter.Version.Split('+')[0]);
            return client;
        });
        _probe = new CheckProbe(children, _http);
    }

    private string NotifyDirectory => Path.Combine(Path.GetDirectoryName(_options.Socket.Path) ?? "/run/apphb", "notify");

    public bool IsRebooting
    {
        get
        {
            lock (_gate)
            {
                return _rebooting;
            }
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_children.IsSubreaper && _initial.Services.Count > 0)
        {
            Log.SubreaperRefused(_logger);
        }

        _heartbeatEvents = _events.Subscribe();
        _heartbeatWatch = Task.Run(WatchHeartbeatsAsync, CancellationToken.None);
        lock (_gate)
        {
            _graph = BuildGraph(_initial.Services);
            foreach (var definition in _initial.Services)
            {
                Add(definition);
            }

            Reconcile();
        }

        // READY=1 follows this: wait (bounded) until every service is running or has settled into a final state.
        var settled = _settled.Task;
        if (await Task.WhenAny(settled, Task.Delay(SettleBound, _time, cancellationToken)) != settled && !cancellationToken.IsCancellationRequested)
        {
            string pending;
            lock (_gate)
            {
                pending = string.Join(", ", _services.Values.Where(s => s.Wanted && s.State != ServiceState.Running).Select(s => $"{s.Definition.Name} ({Describe(s.State)})"));
            }

            Log.ServicesSlowToStart(_logger, SettleBound.TotalSeconds, pending);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _shuttingDown = true;
        }

        await StopAllAsync("apphbd is stopping");
        await _stopping.CancelAsync();
        _heartbeatEvents?.Dispose();
        if (_heartbeatWatch is not null)
        {
            await _heartbeatWatch.ConfigureAwait(false);
        }
    }

    // ---- control (apphbctl) ----

    public async Task<ControlResultDocument> StartServiceAsync(string name)
    {
        SupervisedService service;
        lock (_gate)
        {
            service = Find(name);
            service.Wanted = true;
            if (service.State is ServiceState.Failed or ServiceState.Exited or ServiceState.Stopped or ServiceState.Backoff)
            {
                // An operator's start forgives the restart history: the policy starts counting afresh.
                service.Tracker = new RestartTracker(service.Definition.Restart, _time.TimestampFrequency);
                CancelTimer(service);
                SetState(service, ServiceState.Waiting);
            }

            Reconcile();
        }

        await WaitForAsync(service, s => s.State is ServiceState.Running or ServiceState.Failed or ServiceState.Exited, TimeSpan.FromSeconds(30));
        return Result(service);
    }

    public async Task<ControlResultDocument> StopServiceAsync(string name)
    {
        List<Task> waits = [];
        SupervisedService service;
        lock (_gate)
        {
            service = Find(name);
            service.Wanted = false;
            waits.AddRange(StopDependents(service, $"{name} is being stopped"));
            waits.Add(Stop(service, AfterStop.Nothing, "stopped by apphbctl"));
        }

        await Task.WhenAll(waits);
        return Result(service);
    }

    public async Task<ControlResultDocument> RestartServiceAsync(string name)
    {
        SupervisedService service;
        lock (_gate)
        {
            service = Find(name);
            service.Wanted = true;
            StopDependents(service, $"{name} is restarting");
            if (service.HasProcess)
            {
                Stop(service, AfterStop.Restart, "restart requested by apphbctl");
            }
            else
            {
                service.Tracker = new RestartTracker(service.Definition.Restart, _time.TimestampFrequency);
                CancelTimer(service);
                SetState(service, ServiceState.Waiting);
                Reconcile();
            }
        }

        // First the old process leaves, then the new one becomes ready (or fails).
        await WaitForAsync(service, s => s.State is not ServiceState.Stopping, TimeSpan.FromSeconds(service.Definition.StopTimeout.TotalSeconds + 5));
        await WaitForAsync(service, s => s.State is ServiceState.Running or ServiceState.Failed or ServiceState.Exited, TimeSpan.FromSeconds(30));
        return Result(service);
    }

    public ControlResultDocument Logs(string name, int lines)
    {
        lock (_gate)
        {
            var service = Find(name);
            if (service.Definition.OutputFile is { } file)
            {
                return new ControlResultDocument($"{name}: output goes to {file}", TailOfFile(file, lines));
            }

            return new ControlResultDocument($"{name}: last {lines} lines of output (all of it is in the journal)", service.Output.Tail(lines));
        }
    }

    /// <summary>Re-reads the configuration file and applies the services' diff: unchanged services keep running,
    /// changed ones restart with the new definition, removed ones stop, added ones start.</summary>
    /// <exception cref="ConfigurationException">The file is invalid: nothing was changed.</exception>
    public async Task<ControlResultDocument> ReloadAsync()
    {
        if (_source.Path is null)
        {
            throw new ConfigurationException("apphbd runs on embedded defaults (--demo); there is no file to reload");
        }

        var next = ConfigurationLoader.LoadFile(_source.Path);
        var lines = new List<string>();
        List<Task> waits = [];
        lock (_gate)
        {
            if (next with { Services = _options.Services } != _options)
            {
                lines.Add("settings outside services: changed; they apply at the next start of apphbd");
                Log.ReloadWarning(_logger, lines[^1]);
            }

            var incoming = next.Services.ToDictionary(d => d.Name, StringComparer.Ordinal);
            foreach (var service in _services.Values.ToList())
            {
                var name = service.Definition.Name;
                if (!incoming.TryGetValue(name, out var definition))
                {
                    service.Wanted = false;
                    Publish(ServiceEventKind.Removed, service, "removed from the configuration");
                    waits.Add(Stop(service, AfterStop.Remove, "removed by reload"));
                    lines.Add($"{name}: removed, stopping");
                }
                else if (definition.Canonical() != service.Definition.Canonical())
                {
                    service.Replacement = definition;
                    Publish(ServiceEventKind.Changed, service, "definition changed; restarting with the new one");
                    StopDependents(service, $"{name} changed");
                    waits.Add(Stop(service, AfterStop.Replace, "changed by reload"));
                    lines.Add($"{name}: changed, restarting");
                }
            }

            foreach (var definition in next.Services.Where(d => !_services.ContainsKey(d.Name)))
            {
                lines.Add($"{definition.Name}: added, starting");
            }

            _graph = BuildGraph(next.Services);
            foreach (var definition in next.Services.Where(d => !_services.ContainsKey(d.Name)))
            {
                Publish(ServiceEventKind.Added, Add(definition), "added by reload");
            }

            _options = next;
            Reconcile();
        }

        await Task.WhenAll(waits);
        var summary = lines.Count == 0 ? "no service changed" : $"{lines.Count} change(s)";
        Log.Reloaded(_logger, summary + (lines.Count > 0 ? ": " + string.Join("; ", lines) : string.Empty));
        return new ControlResultDocument(summary, lines);
    }

    public IReadOnlyList<ServiceStatus> Snapshot()
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            return _graph.StartOrder.Select(name => _services[name]).Select(s => new ServiceStatus(
                s.Definition.Name,
                Describe(s.State),
                s.Wanted,
                s.Pid,
                s.Adopted,
                s.Definition.Critical,
                Math.Round((now - s.StateSince) / (double)_time.TimestampFrequency, 3),
                s.Restarts,
                s.LastExit,
                s.WaitingFor,
                s.StatusText,
                s.Definition.Requires,
                s.Checks.Select(c => new CheckStatus(c.Definition.Name, c.Definition.Kind.ToString().ToLowerInvariant(),
                    c.Definition.Heavy ? "heavy" : "light", c.LastPassed, c.ConsecutiveFailures, c.Runs, c.Failures,
                    Math.Round(c.LastDurationMs, 3), c.LastMessage)).ToList(),
                s.LastExitCode,
                s.LastExitSignal)).ToList();
        }
    }

    // ---- the state machine (all under _gate) ----

    private SupervisedService Add(ServiceDefinition definition)
    {
        var service = new SupervisedService(definition, _time.TimestampFrequency, new ServiceOutput(definition.Name, _logger))
        {
            StateSince = _time.GetTimestamp(),
        };
        _services[definition.Name] = service;
        OpenNotify(service);
        return service;
    }

    private void OpenNotify(SupervisedService service)
    {
        var definition = service.Definition;
        if (definition.Readiness.Kind != ReadinessKind.Notify && definition.Heartbeat?.Source != HeartbeatSource.Notify)
        {
            return;
        }

        Directory.CreateDirectory(NotifyDirectory);
        var (uid, gid) = ServiceLaunch.Owner(definition);
        var endpoint = new NotifyEndpoint(Path.Combine(NotifyDirectory, definition.Name), uid, gid);
        service.Notify = endpoint;
        _ = endpoint.ReceiveAsync(message => OnNotify(service, endpoint, message), problem => Log.NotifyIgnored(_logger, definition.Name, problem));
    }

    /// <summary>Starts every wanted service whose requirements are all running, in dependency order.</summary>
    private void Reconcile()
    {
        if (_rebooting || _shuttingDown)
        {
            CheckSettled();
            return;
        }

        var now = _time.GetTimestamp();
        foreach (var name in _graph.StartOrder)
        {
            var service = _services[name];
            if (!service.Wanted || service.State is not (ServiceState.Waiting or ServiceState.Stopped or ServiceState.Backoff))
            {
                continue;
            }

            if (service.State == ServiceState.Backoff && now < service.NotBefore)
            {
                continue;
            }

            var missing = service.Definition.Requires.FirstOrDefault(r => _services[r].State != ServiceState.Running);
            if (missing is not null)
            {
                service.WaitingFor = missing;
                if (service.State != ServiceState.Waiting)
                {
                    SetState(service, ServiceState.Waiting);
                }

                continue;
            }

            Launch(service);
        }

        CheckSettled();
    }

    private void Launch(SupervisedService service)
    {
        var definition = service.Definition;
        var generation = ++service.Generation;
        service.WaitingFor = null;
        service.StatusText = null;
        var now = _time.GetTimestamp();
        service.StartedAt = now;
        service.Tracker.Started(now);

        if (definition.PidFile is { } pidfile && PidFile.FindLiveOwner(pidfile, out _) is { } running && TryAdopt(service, running, generation))
        {
            Publish(ServiceEventKind.Adopted, service, $"adopted the running process from {pidfile}");
            SetState(service, ServiceState.Starting);
            BeginRun(service, generation);
            return;
        }

        SpawnedChild child;
        try
        {
            child = _children.Spawn(ServiceLaunch.Build(definition, _options.Socket.Path, service.Notify?.Path),
                exit => OnExit(service, generation, exit));
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            Publish(ServiceEventKind.StartFailed, service, $"cannot start: {e.Message}", failure: true);
            service.LastExit = "start failed: " + e.Message;
            (service.LastExitCode, service.LastExitSignal) = (null, null);
            ApplyDecision(service, service.Tracker.Exited(ProcessExit.Code(127), _time.GetTimestamp()));
            return;
        }

        service.Pid = child.Pid;
        service.Adopted = false;
        service.Launching = definition.PidFile is not null;
        if (child.Output is not null)
        {
            _ = service.Output.PumpAsync(child.Output, child.Pid);
        }

        SetState(service, ServiceState.Starting);
        Publish(ServiceEventKind.Started, service, service.Launching
            ? $"started {definition.Command[0]}; waiting for it to write {definition.PidFile}"
            : $"started {definition.Command[0]}");
        if (!service.Launching)
        {
            BeginRun(service, generation);
        }
    }

    private bool TryAdopt(SupervisedService service, int pid, int generation)
    {
        bool alive;
        try
        {
            alive = _children.Adopt(pid, exit => OnExit(service, generation, exit));
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            Publish(ServiceEventKind.Alert, service, $"cannot watch pid {pid}: {e.Message}", failure: true);
            return false;
        }

        if (alive)
        {
            service.Pid = pid;
            service.Adopted = true;
            service.Launching = false;
        }

        return alive;
    }

    /// <summary>The service's own process runs: start its checks and its readiness.</summary>
    private void BeginRun(SupervisedService service, int generation)
    {
        var definition = service.Definition;
        var cancellation = new CancellationTokenSource();
        service.ChecksCancellation = cancellation;
        foreach (var check in service.Checks)
        {
            // A new process starts a new episode: the last one's failures were acted on already.
            check.ConsecutiveFailures = 0;
            _ = RunCheckAsync(service, generation, check, cancellation.Token);
        }

        switch (definition.Readiness.Kind)
        {
            case ReadinessKind.None:
                MarkReady(service, "ready (readiness: none)");
                break;
            case ReadinessKind.Delay:
                service.Timer = _time.CreateTimer(_ => Locked(() =>
                {
                    if (service.Generation == generation && service.State == ServiceState.Starting)
                    {
                        MarkReady(service, $"ready after its {definition.Readiness.Delay.TotalMilliseconds:0} ms readiness delay");
                    }
                }), null, definition.Readiness.Delay, Timeout.InfiniteTimeSpan);
                break;
        }
    }

    private void MarkReady(SupervisedService service, string how)
    {
        SetState(service, ServiceState.Running);
        Publish(ServiceEventKind.Ready, service, how);
        if (service.Definition.Heartbeat is { Source: HeartbeatSource.Notify } heartbeat && service.Pid is { } pid)
        {
            try
            {
                service.WatchdogClient = _registry.Register(
                    new ClientIdentity(service.Definition.Name, "sd_notify", new PeerCredentials(pid, 0, 0)),
                    HeartbeatTiming.Create(heartbeat.Interval, TimeSpan.Zero));
            }
            catch (Exception e) when (e is RegistryException or ArgumentException)
            {
                Publish(ServiceEventKind.Alert, service, $"cannot watch its WATCHDOG=1 heartbeats: {e.Message}", failure: true);
            }
        }

        Reconcile();
    }

    private void EndRun(SupervisedService service)
    {
        service.ChecksCancellation?.Cancel();
        service.ChecksCancellation?.Dispose();
        service.ChecksCancellation = null;
        if (service.WatchdogClient is { } client)
        {
            _registry.Unregister(client);
            service.WatchdogClient = null;
        }

        CancelTimer(service);
    }

    private static void CancelTimer(SupervisedService service)
    {
        service.Timer?.Dispose();
        service.Timer = null;
    }

    private void OnExit(SupervisedService service, int generation, ChildExit exit) => Locked(() =>
    {
        if (service.Generation != generation || service.Pid != exit.Pid || !_services.TryGetValue(service.Definition.Name, out var current) || current != service)
        {
            return;
        }

        if (service.Launching && service.State == ServiceState.Starting)
        {
            service.Launching = false;
            if (exit.ExitCode == 0)
            {
                AwaitPidFile(service, generation, attempt: 0);
                return;
            }
        }

        service.Pid = null;
        service.Launching = false;
        EndRun(service);
        if (!service.Adopted)
        {
            // Whatever the main process left in its group (workers, a shell's children) goes with it.
            ChildProcessTable.Signal(exit.Pid, SignalNames.SIGKILL, group: true);
        }

        service.LastExit = exit.ToString();
        (service.LastExitCode, service.LastExitSignal) = (exit.ExitCode, exit.Signal);
        if (service.State == ServiceState.Stopping)
        {
            Stopped(service, exit);
            return;
        }

        Publish(ServiceEventKind.Exited, service, $"exited unexpectedly: {exit}", failure: true, pid: exit.Pid);
        StopDependents(service, $"{service.Definition.Name} exited");
        var processExit = exit.ExitCode is { } code ? ProcessExit.Code(code) : ProcessExit.KilledBy(exit.Signal ?? 0);
        ApplyDecision(service, service.Tracker.Exited(processExit, _time.GetTimestamp()));
        Reconcile();
    });

    /// <summary>A forking service's start command exited 0: its daemon should have written the pidfile. Read it a few
    /// times over the stop timeout, since some daemons write it just after their parent exits.</summary>
    private void AwaitPidFile(SupervisedService service, int generation, int attempt)
    {
        var definition = service.Definition;
        var reason = string.Empty;
        if (PidFile.FindLiveOwner(definition.PidFile!, out reason) is { } pid && TryAdopt(service, pid, generation))
        {
            Publish(ServiceEventKind.Adopted, service, $"its daemon wrote {definition.PidFile}");
            BeginRun(service, generation);
            return;
        }

        var step = TimeSpan.FromMilliseconds(50);
        if (attempt * step < definition.StopTimeout)
        {
            service.Timer = _time.CreateTimer(_ => Locked(() =>
            {
                if (service.Generation == generation && service.State == ServiceState.Starting)
                {
                    CancelTimer(service);
                    AwaitPidFile(service, generation, attempt + 1);
                }
            }), null, step, Timeout.InfiniteTimeSpan);
            return;
        }

        service.Pid = null;
        Publish(ServiceEventKind.StartFailed, service, $"the start command exited 0 but no live process owns the pidfile: {reason}", failure: true);
        ApplyDecision(service, service.Tracker.Exited(ProcessExit.Code(1), _time.GetTimestamp()));
        Reconcile();
    }

    private void Stopped(SupervisedService service, ChildExit exit)
    {
        Publish(ServiceEventKind.Stopped, service, $"stopped ({service.StopReason}): {exit}", pid: exit.Pid);
        var after = service.AfterStop;
        service.AfterStop = AfterStop.Nothing;
        FinishStop(service, after, service.StopReason);
        Reconcile();
    }

    /// <summary>What a stop leads to once the service has no process: it just exited, or it had none.</summary>
    private void FinishStop(SupervisedService service, AfterStop after, string reason)
    {
        switch (after)
        {
            case AfterStop.RestartCounted:
                ApplyDecision(service, service.Tracker.Exited(ProcessExit.KilledBy(service.Definition.StopSignal), _time.GetTimestamp()));
                break;
            case AfterStop.Escalate:
                Escalate(service, service.Definition.Restart.Escalation, reason);
                break;
            case AfterStop.Remove:
                SetState(service, ServiceState.Stopped);
                service.Notify?.Dispose();
                _services.Remove(service.Definition.Name);
                break;
            case AfterStop.Replace:
                Replace(service);
                break;
            default:
                // A service that gave up or exited for good keeps saying so.
                if (service.State is not (ServiceState.Failed or ServiceState.Exited))
                {
                    SetState(service, service.Wanted ? ServiceState.Waiting : ServiceState.Stopped);
                }

                break;
        }

        CompleteStopWaiters(service);
    }

    private void Replace(SupervisedService service)
    {
        if (service.Replacement is { } definition)
        {
            service.Notify?.Dispose();
            service.Notify = null;
            service.Definition = definition;
            service.Replacement = null;
            service.Tracker = new RestartTracker(definition.Restart, _time.TimestampFrequency);
            service.Checks = definition.Checks.Select(c => new CheckState(c)).ToArray();
            OpenNotify(service);
        }

        service.Wanted = true;
        SetState(service, ServiceState.Waiting);
    }

    private void ApplyDecision(SupervisedService service, RestartDecision decision)
    {
        switch (decision)
        {
            case RestartDecision.Restart restart:
                service.Restarts++;
                service.NotBefore = _time.GetTimestamp() + (long)(restart.After.TotalSeconds * _time.TimestampFrequency);
                SetState(service, ServiceState.Backoff);
                Publish(ServiceEventKind.Restarting, service, restart.After == TimeSpan.Zero
                    ? $"restarting now (restart {service.Restarts})"
                    : $"restarting in {restart.After.TotalMilliseconds:0} ms (restart {service.Restarts}, backoff)");
                if (restart.After > TimeSpan.Zero)
                {
                    // The timer firing is the end of the backoff, even if it fires a hair before NotBefore by the clock.
                    var generation = service.Generation;
                    service.Timer = _time.CreateTimer(_ => Locked(() =>
                    {
                        if (service.State == ServiceState.Backoff && service.Generation == generation)
                        {
                            service.NotBefore = 0;
                            Reconcile();
                        }
                    }), null, restart.After, Timeout.InfiniteTimeSpan);
                }

                break;
            case RestartDecision.StayStopped stay:
                service.Wanted = false;
                SetState(service, ServiceState.Exited);
                Publish(ServiceEventKind.Stopped, service, $"not restarted: {stay.Reason}");
                break;
            case RestartDecision.Escalate escalate:
                Escalate(service, escalate.Action, escalate.Reason);
                break;
        }
    }

    private void Escalate(SupervisedService service, EscalationAction action, string reason)
    {
        service.Wanted = false;
        SetState(service, ServiceState.Failed);
        Publish(ServiceEventKind.GaveUp, service, $"gave up: {reason}", failure: true);
        if (action == EscalationAction.Reboot || service.Definition.Critical)
        {
            BeginReboot($"service {service.Definition.Name}{(service.Definition.Critical ? " (critical)" : string.Empty)} failed: {reason}");
        }
    }

    /// <summary>The last resort: stop the services in order, then stop feeding the watchdog so the hardware resets
    /// the node. Loud first, so the reason is in the journal before the reset.</summary>
    private void BeginReboot(string reason)
    {
        if (_rebooting)
        {
            return;
        }

        _rebooting = true;
        Log.RebootStarting(_logger, reason);
        Publish(new ServiceEvent(ServiceEventKind.Reboot, "(node)", null, $"rebooting through the watchdog: {reason}", IsFailure: true) { At = _time.GetUtcNow() });
        _ = Task.Run(async () =>
        {
            await StopAllAsync("the node is rebooting");
            // Give journald a moment to store what was just logged, then flush it: the reset drops the page cache.
            await Task.Delay(TimeSpan.FromMilliseconds(500), _time);
            FileSystems.Sync();
            _tickler.StopFeeding(reason);
            Log.RebootWatchdogStopped(_logger, _tickler.Device?.Backend ?? "none", _options.Watchdog.Device.Timeout?.TotalSeconds ?? 0);
        });
    }

    private Task Stop(SupervisedService service, AfterStop after, string reason)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        service.StopWaiters.Add(waiter);
        if (!service.HasProcess)
        {
            CancelTimer(service);
            service.StopReason = reason;
            // Nothing ran, so nothing failed: a counted restart has nothing to count.
            FinishStop(service, after == AfterStop.RestartCounted ? AfterStop.Nothing : after, reason);
            return waiter.Task;
        }

        // A later, stronger request replaces a pending one (a removal wins over a restart).
        if (service.State != ServiceState.Stopping || after > service.AfterStop)
        {
            service.AfterStop = after;
            service.StopReason = reason;
        }

        if (service.State == ServiceState.Stopping)
        {
            return waiter.Task;
        }

        EndRun(service);
        SetState(service, ServiceState.Stopping);
        var pid = service.Pid!.Value;
        var generation = service.Generation;
        var group = !service.Adopted;
        ChildProcessTable.Signal(pid, service.Definition.StopSignal, group);
        // A stopped (SIGSTOP) process cannot act on the stop signal until it is continued.
        ChildProcessTable.Signal(pid, SignalNames.SIGCONT, group);
        service.Timer = _time.CreateTimer(_ => Locked(() =>
        {
            if (service.Generation == generation && service.State == ServiceState.Stopping && service.Pid == pid)
            {
                Publish(ServiceEventKind.Alert, service, $"did not stop within {service.Definition.StopTimeout.TotalMilliseconds:0} ms of {SignalNames.Name(service.Definition.StopSignal)}: SIGKILL", failure: true);
                ChildProcessTable.Signal(pid, SignalNames.SIGKILL, group);
            }
        }), null, service.Definition.StopTimeout, Timeout.InfiniteTimeSpan);
        return waiter.Task;
    }

    private List<Task> StopDependents(SupervisedService service, string reason)
    {
        var waits = new List<Task>();
        foreach (var name in _graph.DependentsOf(service.Definition.Name).Reverse())
        {
            var dependent = _services[name];
            if (dependent.HasProcess)
            {
                waits.Add(Stop(dependent, AfterStop.Nothing, reason));
            }
            else if (dependent.State == ServiceState.Backoff)
            {
                CancelTimer(dependent);
                SetState(dependent, ServiceState.Waiting);
            }
        }

        return waits;
    }

    private async Task StopAllAsync(string reason)
    {
        List<string> order;
        lock (_gate)
        {
            foreach (var service in _services.Values)
            {
                service.Wanted = false;
            }

            order = _graph.StopOrder.ToList();
        }

        foreach (var name in order)
        {
            Task wait;
            TimeSpan bound;
            lock (_gate)
            {
                if (!_services.TryGetValue(name, out var service))
                {
                    continue;
                }

                wait = Stop(service, AfterStop.Nothing, reason);
                bound = service.Definition.StopTimeout + TimeSpan.FromSeconds(2);
            }

            await Task.WhenAny(wait, Task.Delay(bound, _time));
        }
    }

    // ---- inputs ----

    private void OnNotify(SupervisedService service, NotifyEndpoint endpoint, NotifyMessage message) => Locked(() =>
    {
        if (service.Notify != endpoint || !service.HasProcess || service.Launching)
        {
            return;
        }

        if (message.Status is not null)
        {
            service.StatusText = message.Status;
        }

        if (message.Ready && service.State == ServiceState.Starting && service.Definition.Readiness.Kind == ReadinessKind.Notify)
        {
            MarkReady(service, "sent READY=1");
        }

        if (message.Watchdog && service.WatchdogClient is { } client)
        {
            _registry.Beat(client);
        }

        if (message.WatchdogTrigger)
        {
            HeartbeatLost(service, "sent WATCHDOG=trigger");
        }
    });

    private async Task WatchHeartbeatsAsync()
    {
        var subscription = _heartbeatEvents!;
        try
        {
            while (await subscription.Reader.WaitToReadAsync(_stopping.Token))
            {
                while (subscription.Reader.TryRead(out var appEvent))
                {
                    if (appEvent is ClientEvent { ClientKind: ClientEventKind.Hung } hung)
                    {
                        Locked(() =>
                        {
                            if (_services.TryGetValue(hung.Client.Name, out var service) && service.Definition.Heartbeat is { } heartbeat
                                && (heartbeat.Source == HeartbeatSource.Notify) == (hung.Client.Instance == "sd_notify"))
                            {
                                HeartbeatLost(service, $"no heartbeat for {hung.Client.LastBeatAge.TotalMilliseconds:0} ms (interval {heartbeat.Interval.TotalMilliseconds:0} ms)");
                            }
                        });
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (System.Threading.Channels.ChannelClosedException)
        {
        }
    }

    private void HeartbeatLost(SupervisedService service, string reason)
    {
        if (service.State is not (ServiceState.Running or ServiceState.Starting) || service.Definition.Heartbeat is not { } heartbeat)
        {
            return;
        }

        Publish(ServiceEventKind.HeartbeatLost, service, reason, failure: true);
        Act(service, heartbeat.Action, $"heartbeat lost: {reason}");
    }

    private async Task RunCheckAsync(SupervisedService service, int generation, CheckState check, CancellationToken cancellationToken)
    {
        var definition = check.Definition;
        try
        {
            // A probe-ready service is probed at once; other checks wait one interval for the service to come up.
            if (service.Definition.Readiness.Kind != ReadinessKind.Probe)
            {
                await Task.Delay(definition.Interval, _time, cancellationToken);
            }

            while (!cancellationToken.IsCancellationRequested)
            {
                var result = await _probe.RunAsync(service.Definition.Name, definition, cancellationToken);
                var starting = false;
                Locked(() =>
                {
                    if (service.Generation == generation && !cancellationToken.IsCancellationRequested)
                    {
                        OnCheckResult(service, check, result);
                        starting = service.State == ServiceState.Starting;
                    }
                });
                var pause = starting && definition.Interval > TimeSpan.FromMilliseconds(500) ? TimeSpan.FromMilliseconds(500) : definition.Interval;
                await Task.Delay(pause, _time, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void OnCheckResult(SupervisedService service, CheckState check, CheckResult result)
    {
        _metrics.Check(service.Definition.Name, check.Definition.Name, result.Duration, result.Passed);
        check.Runs++;
        check.LastPassed = result.Passed;
        check.LastMessage = result.Message;
        check.LastDurationMs = result.Duration.TotalMilliseconds;
        if (result.Passed)
        {
            if (check.ConsecutiveFailures >= check.Definition.Failures)
            {
                Publish(ServiceEventKind.CheckRecovered, service, $"check {check.Definition.Name} passes again: {result.Message}");
            }

            check.ConsecutiveFailures = 0;
            if (service.State == ServiceState.Starting && service.Definition.Readiness.Kind == ReadinessKind.Probe && !service.Launching)
            {
                MarkReady(service, $"check {check.Definition.Name} passed: {result.Message}");
            }

            return;
        }

        check.Failures++;
        if (service.State != ServiceState.Running)
        {
            return;
        }

        check.ConsecutiveFailures++;
        if (check.ConsecutiveFailures == check.Definition.Failures)
        {
            var reason = $"check {check.Definition.Name} failed {check.ConsecutiveFailures} time(s) in a row: {result.Message}";
            Publish(ServiceEventKind.CheckFailed, service, reason, failure: true);
            Act(service, check.Definition.Action, reason);
        }
    }

    private void Act(SupervisedService service, CheckAction action, string reason)
    {
        switch (action)
        {
            case CheckAction.Restart:
                Stop(service, AfterStop.RestartCounted, reason);
                break;
            case CheckAction.RestartWithDependents:
                StopDependents(service, $"{service.Definition.Name} is restarting");
                Stop(service, AfterStop.RestartCounted, reason);
                break;
            case CheckAction.Alert:
                Publish(ServiceEventKind.Alert, service, reason, failure: true);
                break;
            case CheckAction.Escalate:
                StopDependents(service, $"{service.Definition.Name} is escalating");
                Stop(service, AfterStop.Escalate, reason);
                break;
        }
    }

    // ---- helpers ----

    private void SetState(SupervisedService service, ServiceState state)
    {
        service.State = state;
        service.StateSince = _time.GetTimestamp();
        if (state != ServiceState.Waiting)
        {
            service.WaitingFor = null;
        }

        var changed = service.StateChanged;
        service.StateChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private void CheckSettled()
    {
        if (_services.Values.All(s => !s.Wanted || s.State is ServiceState.Running or ServiceState.Failed or ServiceState.Exited or ServiceState.Stopped))
        {
            _settled.TrySetResult();
        }
    }

    private static void CompleteStopWaiters(SupervisedService service)
    {
        foreach (var waiter in service.StopWaiters)
        {
            waiter.TrySetResult();
        }

        service.StopWaiters.Clear();
    }

    private async Task WaitForAsync(SupervisedService service, Func<SupervisedService, bool> condition, TimeSpan bound)
    {
        var deadline = _time.GetTimestamp() + (long)(bound.TotalSeconds * _time.TimestampFrequency);
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (condition(service))
                {
                    return;
                }

                changed = service.StateChanged.Task;
            }

            var left = TimeSpan.FromSeconds((deadline - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
            if (left <= TimeSpan.Zero || await Task.WhenAny(changed, Task.Delay(left, _time)) != changed)
            {
                return;
            }
        }
    }

    private ControlResultDocument Result(SupervisedService service)
    {
        lock (_gate)
        {
            var pid = service.Pid is { } p ? $", pid {p}" : string.Empty;
            var waiting = service.WaitingFor is { } w ? $", waiting for {w}" : string.Empty;
            return new ControlResultDocument($"{service.Definition.Name}: {Describe(service.State)}{pid}{waiting}", []);
        }
    }

    private SupervisedService Find(string name) => _services.TryGetValue(name, out var service)
        ? service
        : throw new KeyNotFoundException($"no service named \"{name}\"; configured: {string.Join(", ", _services.Keys.Order(StringComparer.Ordinal))}");

    /// <summary>Events are queued under the lock and published when it is released: publishing wakes the event
    /// threads, which on a small machine would otherwise compete with the respawn they describe.</summary>
    private void Publish(ServiceEventKind kind, SupervisedService service, string detail, bool failure = false, int? pid = null) =>
        Publish(new ServiceEvent(kind, service.Definition.Name, pid ?? service.Pid, detail, failure) { At = _time.GetUtcNow() });

    private void Publish(ServiceEvent appEvent)
    {
        if (_deferring)
        {
            _unpublished.Add(appEvent);
        }
        else
        {
            // Control requests and start-up act under the lock directly; nothing time-critical waits on them.
            _events.Publish(appEvent);
        }
    }

    private void Locked(Action action)
    {
        List<ServiceEvent>? publish = null;
        lock (_gate)
        {
            _deferring = true;
            try
            {
                action();
            }
#pragma warning disable CA1031 // One service's failure must not end the supervision of every other.
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.SupervisorFailed(_logger, e);
            }

            _deferring = false;
            if (_unpublished.Count > 0)
            {
                publish = [.. _unpublished];
                _unpublished.Clear();
            }
        }

        if (publish is not null)
        {
            foreach (var e in publish)
            {
                _events.Publish(e);
            }
        }
    }


    private static ServiceGraph BuildGraph(IReadOnlyList<ServiceDefinition> definitions) =>
        ServiceGraph.Build(definitions.ToDictionary(d => d.Name, d => d.Requires));

    internal static string Describe(ServiceState state) => state.ToString().ToLowerInvariant();

    private static List<string> TailOfFile(string file, int lines)
    {
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var start = Math.Max(0, stream.Length - (lines * 200L));
            stream.Seek(start, SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n');
            return all.Skip(start > 0 ? 1 : 0).Where(l => l.Length > 0).TakeLast(lines).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [$"cannot read {file}: {e.Message}"];
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var service in _services.Values)
            {
                service.ChecksCancellation?.Cancel();
                service.Timer?.Dispose();
                service.Notify?.Dispose();
            }
        }

        _stopping.Dispose();
        if (_http.IsValueCreated)
        {
            _http.Value.Dispose();
        }

        _heartbeatEvents?.Dispose();
    }
}

/// <summary>Where the running configuration came from: the file to re-read on reload, or null for embedded defaults.</summary>
internal sealed record ConfigurationSource(string? Path);
