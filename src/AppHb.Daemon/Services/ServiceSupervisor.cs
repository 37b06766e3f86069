using AppHb.Core.Events;
using AppHb.Core.Heartbeats;
using AppHb.Core.Scheduling;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Loops;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;
using AppHb.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Services;

/// <summary>Level 2's host: runs the <see cref="SupervisorMachine"/>'s commands (spawn, signal, probe, sockets, the
/// registry) and feeds it what happens. It holds no policy.
/// <para>One lock guards the machine; every input (a pidfd exit on the exit watcher's thread, a check result, a notify
/// datagram, a deadline on the deadline loop's thread, a control request) takes it, lets the machine decide, and runs
/// the commands at once, in order, on the same thread: there is no queue between a child's exit and its respawn.
/// Events are published once the lock is released.</para></summary>
internal sealed class ServiceSupervisor : IHostedService, IDeadlineSource, IDisposable
{
    private static readonly TimeSpan SettleBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(30);
    private readonly Lock _gate = new();
    private readonly SupervisorMachine _machine;
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
    private readonly Dictionary<string, ServiceOutput> _outputs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NotifyEndpoint> _notify = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RegisteredClient> _heartbeats = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (ServiceDefinition Definition, string? Notify, SpawnRequest Request)> _launches = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Service, int Run), CancellationTokenSource> _checks = [];
    private readonly List<AppHbEvent> _unpublished = [];
    private readonly Queue<Action<SupervisorMachine>> _reentered = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ApphbdOptions _options;
    private long _armedAt = long.MaxValue;
    private int _depth;
    private int _disposed;
    private EventSubscription? _heartbeatEvents;
    private Task? _heartbeatWatch;

    public ServiceSupervisor(ApphbdOptions options, ConfigurationSource source, TimeProvider time, EventStream events,
        HeartbeatRegistry registry, ChildProcessTable children, WatchdogTickler tickler, Export.ObservedMetrics metrics, ILogger<ServiceSupervisor> logger)
    {
        _metrics = metrics;
        _options = options;
        _source = source;
        _time = time;
        _events = events;
        _registry = registry;
        _children = children;
        _tickler = tickler;
        _logger = logger;
        _machine = new SupervisorMachine(time, options.Services);
        if (options.Cluster is not null)
        {
            // The pair's group waits until the pair makes this node active.
            _machine.SetGroupActive(ServiceDefinition.PairGroup, active: false);
        }
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

    /// <inheritdoc/>
    public Action? EarlierDeadlineScheduled { get; set; }

    private string NotifyDirectory => Path.Combine(Path.GetDirectoryName(_options.Socket.Path) ?? "/run/apphb", "notify");

    public bool IsRebooting
    {
        get
        {
            lock (_gate)
            {
                return _machine.IsRebooting;
            }
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_children.IsSubreaper && _options.Services.Count > 0)
        {
            Log.SubreaperRefused(_logger);
        }

        // Hung heartbeats only: the other events (those of every respawn among them) wake nothing here.
        _heartbeatEvents = _events.Subscribe(filter: static e => e is ClientEvent { ClientKind: ClientEventKind.Hung });
        _heartbeatWatch = Task.Run(WatchHeartbeatsAsync, CancellationToken.None);
        Run(m => m.Boot());

        // READY=1 follows this: wait (bounded) until every service is running or has settled into a final state.
        var settled = _settled.Task;
        if (await Task.WhenAny(settled, Task.Delay(SettleBound, _time, cancellationToken)) != settled && !cancellationToken.IsCancellationRequested)
        {
            string pending;
            lock (_gate)
            {
                pending = string.Join(", ", _machine.Services.Where(s => s.Wanted && s.State != ServiceRunState.Running)
                    .Select(s => $"{s.Name} ({ServiceRunStates.Name(s.State)})"));
            }

            Log.ServicesSlowToStart(_logger, SettleBound.TotalSeconds, pending);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Run(m => m.BeginShutdown("apphbd is stopping"));
        // Each service gets its stop timeout (then SIGKILL) and a grace; the host's shutdown timeout bounds the whole.
        await WaitForAsync(() => _machine.IsShutdownComplete, Timeout.InfiniteTimeSpan, cancellationToken);
        await _stopping.CancelAsync();
        _heartbeatEvents?.Dispose();
        if (_heartbeatWatch is not null)
        {
            await _heartbeatWatch.ConfigureAwait(false);
        }
    }

    // ---- the pair (level 3) ----

    /// <summary>Set by the pair's host: a service whose escalation is failover gave up; hand the group to the peer.</summary>
    public Func<string, string, Task>? FailoverRequested { get; set; }

    /// <summary>Starts (in dependency order) or stops (in reverse) the services of <paramref name="group"/> on this node.</summary>
    public void SetGroupActive(string group, bool active) => Control(m => m.SetGroupActive(group, active));

    /// <summary>Completes once no service of <paramref name="group"/> has a process (each got its stop timeout, then
    /// SIGKILL).</summary>
    public Task WhenGroupStoppedAsync(string group, CancellationToken cancellationToken) =>
        WaitForAsync(() => _machine.IsGroupStopped(group), Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Whether <paramref name="group"/> is active on this node and every wanted service of it runs.</summary>
    public bool IsGroupRunning(string group)
    {
        lock (_gate)
        {
            return _machine.IsGroupActive(group) && _machine.Services.Where(s => s.Definition.ResourceGroup == group)
                .All(s => !s.Wanted || s.State == ServiceRunState.Running);
        }
    }

    // ---- control (apphbctl) ----

    public async Task<ControlResultDocument> StartServiceAsync(string name, CancellationToken cancellationToken)
    {
        Control(m => m.Start(name));
        await WaitForAsync(() => StateOf(name) is null or ServiceRunState.Running or ServiceRunState.Failed or ServiceRunState.Exited, StartBound, cancellationToken);
        return Result(name);
    }

    public async Task<ControlResultDocument> StopServiceAsync(string name, CancellationToken cancellationToken)
    {
        TimeSpan bound = default;
        Control(m => bound = StopBound(m, name));
        Control(m => m.Stop(name));
        await WaitForAsync(() => _machine.IsStopComplete(name), bound, cancellationToken);
        return Result(name);
    }

    public async Task<ControlResultDocument> RestartServiceAsync(string name, CancellationToken cancellationToken)
    {
        TimeSpan bound = default;
        Control(m => bound = StopBound(m, name));
        Control(m => m.Restart(name));
        // First the old process leaves, then the new one becomes ready (or fails).
        await WaitForAsync(() => StateOf(name) is not ServiceRunState.Stopping, bound, cancellationToken);
        await WaitForAsync(() => StateOf(name) is null or ServiceRunState.Running or ServiceRunState.Failed or ServiceRunState.Exited, StartBound, cancellationToken);
        return Result(name);
    }

    public ControlResultDocument Logs(string name, int lines)
    {
        lock (_gate)
        {
            var service = _machine.Find(name);
            if (service.Definition.OutputFile is { } file)
            {
                return new ControlResultDocument($"{name}: output goes to {file}", TailOfFile(file, lines));
            }

            return new ControlResultDocument($"{name}: last {lines} lines of output (all of it is in the journal)",
                _outputs.TryGetValue(name, out var output) ? output.Tail(lines) : []);
        }
    }

    /// <summary>Re-reads the configuration file and applies the services' diff: unchanged services keep running,
    /// changed ones restart with the new definition, removed ones stop, added ones start.</summary>
    /// <exception cref="ConfigurationException">The file is invalid: nothing was changed.</exception>
    public async Task<ControlResultDocument> ReloadAsync(CancellationToken cancellationToken)
    {
        if (_source.Path is null)
        {
            throw new ConfigurationException("apphbd runs on embedded defaults (--demo); there is no file to reload");
        }

        var next = ConfigurationLoader.LoadFile(_source.Path);
        var lines = new List<string>();
        var touched = new List<string>();
        var bound = TimeSpan.FromSeconds(5);
        Control(m =>
        {
            if (next with { Services = _options.Services } != _options)
            {
                lines.Add("settings outside services: changed; they apply at the next start of apphbd");
                Log.ReloadWarning(_logger, lines[^1]);
            }

            var plan = ReloadPlan.Compute(m.Services.Select(s => s.Definition), next.Services);
            touched.AddRange(plan.Removed);
            touched.AddRange(plan.Changed.Select(d => d.Name));
            foreach (var name in touched)
            {
                bound += StopBound(m, name);
            }

            try
            {
                lines.AddRange(m.Reload(next.Services));
            }
            catch (ServiceGraphException e)
            {
                throw new ConfigurationException([.. e.Problems]);
            }

            _options = next;
        });

        // The removed and changed services' old processes are gone when this returns.
        await WaitForAsync(() => touched.All(name => StateOf(name) is not ServiceRunState.Stopping), bound, cancellationToken);
        var summary = lines.Count == 0 ? "no service changed" : $"{lines.Count} change(s)";
        Log.Reloaded(_logger, summary + (lines.Count > 0 ? ": " + string.Join("; ", lines) : string.Empty));
        return new ControlResultDocument(summary, lines);
    }

    public IReadOnlyList<ServiceStatus> Snapshot()
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            return _machine.Services.Select(s => new ServiceStatus(
                s.Name,
                ServiceRunStates.Name(s.State),
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

    /// <summary>Runs the machine's due deadlines (backoff ends, readiness delays, stop timeouts, check runs) on the
    /// deadline loop's thread.</summary>
    public long ExpireDue()
    {
        var next = long.MaxValue;
        Run(m => m.ExpireDue(), expiring: true, after: m => next = m.NextDue);
        return next;
    }

    // ---- running inputs and commands ----

    /// <summary>One input, its commands, and every result they produce, under the lock. An input that arrives on the
    /// same thread while a command runs (a child that died before it was tracked calls back at once) waits for that
    /// command to finish, so the machine always hears of a launch before its exit.</summary>
    private void Run(Action<SupervisorMachine> input, bool rethrow = false, bool expiring = false, Action<SupervisorMachine>? after = null)
    {
        List<AppHbEvent>? publish = null;
        Action? wake = null;
        lock (_gate)
        {
            if (_depth > 0)
            {
                _reentered.Enqueue(input);
                return;
            }

            _depth++;
            try
            {
                try
                {
                    input(_machine);
                }
                finally
                {
                    Drain();
                }
            }
#pragma warning disable CA1031 // One service's failure must not end the supervision of every other.
            catch (Exception e) when (!rethrow)
#pragma warning restore CA1031
            {
                Log.SupervisorFailed(_logger, e);
            }
            finally
            {
                _depth--;
                var next = _machine.NextDue;
                if (expiring)
                {
                    _armedAt = next;
                }
                else if (next < _armedAt)
                {
                    _armedAt = next;
                    wake = EarlierDeadlineScheduled;
                }

                after?.Invoke(_machine);
                var changed = _changed;
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                changed.TrySetResult();
                if (_machine.IsSettled)
                {
                    _settled.TrySetResult();
                }

                if (_unpublished.Count > 0)
                {
                    publish = [.. _unpublished];
                    _unpublished.Clear();
                }
            }
        }

        wake?.Invoke();
        if (publish is not null)
        {
            foreach (var e in publish)
            {
                _events.Publish(e);
            }
        }
    }

    /// <summary>An operator's input: refusals (unknown service, apphbd stopping) reach the caller.</summary>
    private void Control(Action<SupervisorMachine> input) => Run(input, rethrow: true);

    private void Drain()
    {
        while (true)
        {
            if (_reentered.TryDequeue(out var input))
            {
                input(_machine);
                continue;
            }

            if (!_machine.TryTakeCommand(out var command))
            {
                return;
            }

            try
            {
                Execute(command);
            }
#pragma warning disable CA1031 // A command that failed is logged; the next ones still run.
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.SupervisorFailed(_logger, e);
            }
        }
    }

    private void Execute(SupervisorCommand command)
    {
        switch (command)
        {
            case SupervisorCommand.Launch launch:
                Launch(launch);
                break;
            case SupervisorCommand.ReadPidFile read:
                var reason = string.Empty;
                int? adopted = PidFile.FindLiveOwner(read.PidFile, out reason) is { } pid && TryAdopt(read.Service, read.Run, pid) ? pid : null;
                _machine.PidFileRead(read.Service, read.Run, adopted, reason);
                break;
            case SupervisorCommand.Signal signal:
                ChildProcessTable.Signal(signal.Pid, signal.Number, signal.Group);
                break;
            case SupervisorCommand.RunCheck check:
                StartCheck(check);
                break;
            case SupervisorCommand.CancelChecks cancel when _checks.Remove((cancel.Service, cancel.Run), out var checks):
                checks.Cancel();
                checks.Dispose();
                break;
            case SupervisorCommand.OpenNotify open:
                OpenNotify(open);
                break;
            case SupervisorCommand.CloseNotify close when _notify.Remove(close.Service, out var endpoint):
                endpoint.Dispose();
                break;
            case SupervisorCommand.WatchHeartbeats watch:
                WatchHeartbeats(watch);
                break;
            case SupervisorCommand.UnwatchHeartbeats unwatch when _heartbeats.Remove(unwatch.Service, out var client):
                try
                {
                    _registry.Unregister(client);
                }
                catch (RegistryException)
                {
                    // Its process was declared dead already.
                }

                break;
            case SupervisorCommand.Beat beat when _heartbeats.TryGetValue(beat.Service, out var beating):
                try
                {
                    _registry.Beat(beating);
                }
                catch (RegistryException)
                {
                }

                break;
            case SupervisorCommand.Publish publish:
                _unpublished.Add(publish.Event);
                break;
            case SupervisorCommand.RebootStarting starting:
                Log.RebootStarting(_logger, starting.Reason);
                break;
            case SupervisorCommand.RebootNode reboot:
                _ = Task.Run(() => StopFeedingAsync(reboot.Reason));
                break;
            case SupervisorCommand.RequestFailover failover:
                if (FailoverRequested is { } request)
                {
                    _ = Task.Run(() => request(failover.Service, failover.Reason));
                }
                else
                {
                    Log.FailoverUnavailable(_logger, failover.Service, failover.Reason);
                }

                break;
            case SupervisorCommand.Forget forget:
                _outputs.Remove(forget.Service);
                _launches.Remove(forget.Service);
                break;
        }
    }

    private void Launch(SupervisorCommand.Launch launch)
    {
        var (name, run, definition) = (launch.Service, launch.Run, launch.Definition);
        if (definition.PidFile is { } pidfile && PidFile.FindLiveOwner(pidfile, out _) is { } running && TryAdopt(name, run, running))
        {
            _machine.Launched(name, run, running, LaunchOrigin.Adopted);
            return;
        }

        SpawnedChild child;
        try
        {
            child = _children.Spawn(Request(name, definition), exit => OnExit(name, run, exit));
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException or ObjectDisposedException)
        {
            _machine.LaunchFailed(name, run, e.Message);
            return;
        }

        if (child.Output is not null)
        {
            if (!_outputs.TryGetValue(name, out var output))
            {
                _outputs[name] = output = new ServiceOutput(name, _logger);
            }

            _ = output.PumpAsync(child.Output, child.Pid, _stopping.Token);
        }

        _machine.Launched(name, run, child.Pid, LaunchOrigin.Spawned);
    }

    /// <summary>The exec of a service, built once per definition (and notify socket): a respawn does no user lookup and
    /// no environment building. A reload's new definition builds a new one.</summary>
    private SpawnRequest Request(string name, ServiceDefinition definition)
    {
        var notify = _notify.GetValueOrDefault(name)?.Path;
        if (_launches.TryGetValue(name, out var known) && ReferenceEquals(known.Definition, definition) && known.Notify == notify)
        {
            return known.Request;
        }

        var request = ServiceLaunch.Build(definition, _options.Socket.Path, notify);
        _launches[name] = (definition, notify, request);
        return request;
    }

    private bool TryAdopt(string service, int run, int pid)
    {
        try
        {
            return _children.Adopt(pid, exit => OnExit(service, run, exit));
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            _machine.ReportProblem(service, $"cannot watch pid {pid}: {e.Message}");
            return false;
        }
    }

    private void OnExit(string service, int run, ChildExit exit) =>
        Run(m => m.Exited(service, run, exit.Pid, new ProcessExit(exit.ExitCode, exit.Signal)));

    private void StartCheck(SupervisorCommand.RunCheck check)
    {
        if (!_checks.TryGetValue((check.Service, check.Run), out var run))
        {
            _checks[(check.Service, check.Run)] = run = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        }

        var token = run.Token;
        // Off the lock and off the calling thread: a probe may take up to its timeout.
        _ = Task.Run(async () =>
        {
            try
            {
                var result = await _probe.RunAsync(check.Service, check.Definition, token);
                if (!token.IsCancellationRequested)
                {
                    _metrics.Check(check.Service, check.Definition.Name, result.Duration, result.Passed);
                    Run(m => m.CheckCompleted(check.Service, check.Run, check.Check, result));
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, CancellationToken.None);
    }

    private void OpenNotify(SupervisorCommand.OpenNotify open)
    {
        var path = Path.Combine(NotifyDirectory, open.Service);
        NotifyEndpoint endpoint;
        try
        {
            Directory.CreateDirectory(NotifyDirectory);
            var (uid, gid) = ServiceLaunch.Owner(open.Definition);
            endpoint = new NotifyEndpoint(path, uid, gid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException)
        {
            _machine.ReportProblem(open.Service, $"cannot open its NOTIFY_SOCKET {path}: {e.Message}");
            return;
        }

        if (_notify.Remove(open.Service, out var previous))
        {
            previous.Dispose();
        }

        _notify[open.Service] = endpoint;
        var service = open.Service;
        _ = endpoint.ReceiveAsync(
            message => Run(m =>
            {
                // A datagram that reached an endpoint a reload has since replaced speaks for nothing.
                if (_notify.GetValueOrDefault(service) == endpoint)
                {
                    m.Notified(service, message);
                }
            }),
            problem => Log.NotifyIgnored(_logger, service, problem),
            _stopping.Token);
    }

    private void WatchHeartbeats(SupervisorCommand.WatchHeartbeats watch)
    {
        try
        {
            _heartbeats[watch.Service] = _registry.Register(
                new ClientIdentity(watch.Service, SupervisorMachine.NotifyHeartbeatInstance, new PeerCredentials(watch.Pid, 0, 0)),
                HeartbeatTiming.Create(watch.Interval, TimeSpan.Zero));
        }
        catch (Exception e) when (e is RegistryException or ArgumentException)
        {
            _machine.ReportProblem(watch.Service, $"cannot watch its WATCHDOG=1 heartbeats: {e.Message}");
        }
    }

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
                        Run(m => m.ClientHung(hung.Client.Name, hung.Client.Instance, hung.Client.LastBeatAge));
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

    /// <summary>The services are stopped: give journald a moment to store what was just logged and flush it (the
    /// reset drops the page cache), then stop feeding the watchdog.</summary>
    private async Task StopFeedingAsync(string reason)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(500), _time);
        FileSystems.Sync();
        _tickler.StopFeeding(reason);
        Log.RebootWatchdogStopped(_logger, _tickler.Device?.Backend ?? "none", _options.Watchdog.Device.Timeout?.TotalSeconds ?? 0);
    }

    // ---- helpers ----

    private ServiceRunState? StateOf(string name) => _machine.TryFind(name, out var s) ? s.State : null;

    /// <summary>How long a stop of <paramref name="name"/> (after what requires it) may take at most: every stop
    /// timeout in turn, then SIGKILL, and a margin. A bound only: the wait ends when the stop does.</summary>
    private static TimeSpan StopBound(SupervisorMachine machine, string name)
    {
        _ = machine.Find(name);
        return machine.Services.Aggregate(TimeSpan.FromSeconds(5), (sum, s) => sum + s.Definition.StopTimeout);
    }

    /// <summary>Waits until <paramref name="condition"/> (read under the lock) holds, the bound passes, or the
    /// caller leaves.</summary>
    private async Task WaitForAsync(Func<bool> condition, TimeSpan bound, CancellationToken cancellationToken)
    {
        var deadline = bound == Timeout.InfiniteTimeSpan ? long.MaxValue : _time.GetTimestamp() + (long)(bound.TotalSeconds * _time.TimestampFrequency);
        while (!cancellationToken.IsCancellationRequested)
        {
            Task changed;
            lock (_gate)
            {
                if (condition())
                {
                    return;
                }

                changed = _changed.Task;
            }

            if (deadline == long.MaxValue)
            {
                await changed.WaitAsync(cancellationToken).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                continue;
            }

            var left = TimeSpan.FromSeconds((deadline - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            await Task.WhenAny(changed, Task.Delay(left, _time, cancellationToken));
        }
    }

    private ControlResultDocument Result(string name)
    {
        lock (_gate)
        {
            if (!_machine.TryFind(name, out var service))
            {
                return new ControlResultDocument($"{name}: removed", []);
            }

            var pid = service.Pid is { } p ? $", pid {p}" : string.Empty;
            var waiting = service.WaitingFor is { } w ? $", waiting for {w}" : string.Empty;
            return new ControlResultDocument($"{name}: {ServiceRunStates.Name(service.State)}{pid}{waiting}", []);
        }
    }

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

    /// <summary>Idempotent: the container disposes a service registered both as itself and as a hosted service twice.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        lock (_gate)
        {
            foreach (var checks in _checks.Values)
            {
                checks.Cancel();
                checks.Dispose();
            }

            _checks.Clear();
            foreach (var endpoint in _notify.Values)
            {
                endpoint.Dispose();
            }

            _notify.Clear();
        }

        _stopping.Cancel();
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
