using System.Globalization;
using System.Text;
using AppHb.Core.Scheduling;
using AppHb.Core.Supervision;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Core.Tests.Supervision;

/// <summary>A recorded situation for the <see cref="SupervisorMachine"/>, replayed under a fake clock: inputs in, the
/// exact commands out (the way Pacemaker's scheduler tests replay saved cluster states). The text format, one
/// scenario per <c>=== title</c> block of a <c>.scenario</c> file:
/// <code>
/// service NAME [requires=a,b] [readiness=none|notify|probe|300ms] [critical] [pidfile=/p] [group=g]
///              [heartbeat=client|notify:INTERVAL[:ACTION]] [check=NAME:INTERVAL:FAILURES:ACTION]
///              [stop-timeout=2s] [stop-signal=INT] [backoff=..] [delay=..] [max-delay=..] [stable-after=..]
///              [max-restarts=N] [window=..] [escalation=give-up|reboot|failover] [no-restart=42,43]
/// INPUT                        boot | exit NAME code N | exit NAME signal N | after 250ms | result NAME CHECK pass|fail|not-running
///                              | exit-run NAME RUN PID code|signal N | result-run NAME RUN CHECK pass|fail   (reports of a given run)
///                              | notify NAME READY=1,WATCHDOG=1,STATUS=x | hung NAME [INSTANCE] | start|stop|restart NAME
///                              | reload SERVICE-LINE; SERVICE-LINE; ... | shutdown | group NAME on|off
///                              | spawn-fails NAME | adopt NAME PID | pidfile NAME PID   (the last three prime the next answer)
///   COMMAND                    every command the input produced, in order (after: "+100ms COMMAND", from the step's start)
/// ? NAME STATE [pid=N] [restarts=N] [wanted=yes|no] [waiting=X] [exit=...]   an assertion about a service
/// ? group NAME stopped|not-stopped   whether no service of the group has a process
/// </code>
/// The runner answers Launch itself, as the host does at once: spawned with pid 100 + run, unless primed otherwise;
/// ReadPidFile with the primed pid, else "no pidfile".</summary>
internal sealed class SupervisorScenario
{
    private readonly List<Step> _steps = [];
    private readonly List<ServiceDefinition> _services = [];

    private SupervisorScenario(string title, string source)
    {
        Title = title;
        Source = source;
    }

    public string Title { get; }

    /// <summary>file:line of the title, for failures.</summary>
    public string Source { get; }

    public override string ToString() => Title;

    public static IEnumerable<SupervisorScenario> Load(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*.scenario").Order(StringComparer.Ordinal))
        {
            foreach (var scenario in Parse(File.ReadAllLines(file), Path.GetFileName(file)))
            {
                yield return scenario;
            }
        }
    }

    public static List<SupervisorScenario> Parse(IReadOnlyList<string> lines, string file)
    {
        var scenarios = new List<SupervisorScenario>();
        SupervisorScenario? current = null;
        for (var i = 0; i < lines.Count; i++)
        {
            var raw = lines[i];
            var where = $"{file}:{i + 1}";
            var line = raw.TrimEnd();
            if (line.Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith("=== ", StringComparison.Ordinal))
            {
                current = new SupervisorScenario(line[4..].Trim(), where);
                scenarios.Add(current);
                continue;
            }

            if (current is null)
            {
                throw new FormatException($"{where}: a scenario starts with '=== title'");
            }

            if (line.StartsWith("  ", StringComparison.Ordinal))
            {
                if (current._steps.Count == 0)
                {
                    throw new FormatException($"{where}: an expected command before any input");
                }

                current._steps[^1].Expected.Add(line.Trim());
            }
            else if (line.StartsWith("service ", StringComparison.Ordinal))
            {
                current._services.Add(ParseService(line, where));
            }
            else
            {
                current._steps.Add(new Step(line.Trim(), where));
            }
        }

        return scenarios;
    }

    /// <summary>Replays the scenario; throws with the first difference, naming its line.</summary>
    public void Run()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var timestamps = new Timestamps(clock);
        var machine = new SupervisorMachine(clock, _services);
        var host = new ScenarioHost(machine);
        foreach (var step in _steps)
        {
            var words = step.Input.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            List<string> actual;
            try
            {
                if (words[0] == "?")
                {
                    Assert(step, machine, words);
                    continue;
                }

                actual = words[0] == "after"
                    ? After(machine, host, clock, timestamps, Duration(words[1], step.Where))
                    : host.Apply(() => Input(machine, host, words, step.Where));
            }
            catch (Exception e) when (e is not ScenarioFailure)
            {
                throw new ScenarioFailure($"{step.Where}: '{step.Input}' threw {e.GetType().Name}: {e.Message}", e);
            }

            if (!actual.SequenceEqual(step.Expected))
            {
                var expected = step.Expected.Count == 0 ? "  (nothing)" : string.Join('\n', step.Expected.Select(e => "  " + e));
                var got = actual.Count == 0 ? "  (nothing)" : string.Join('\n', actual.Select(a => "  " + a));
                throw new ScenarioFailure($"{step.Where}: after '{step.Input}' expected\n{expected}\nbut the machine asked for\n{got}");
            }
        }
    }

    private static List<string> After(SupervisorMachine machine, ScenarioHost host, FakeTimeProvider clock, Timestamps timestamps, TimeSpan span)
    {
        var start = clock.GetTimestamp();
        var end = start + timestamps.ToTicks(span);
        var lines = new List<string>();
        while (true)
        {
            var offset = timestamps.ToTimeSpan(clock.GetTimestamp() - start);
            var next = long.MaxValue;
            lines.AddRange(host.Apply(() => next = machine.ExpireDue()).Select(c => $"+{offset.TotalMilliseconds:0}ms {c}"));
            next = Math.Min(next, machine.NextDue);
            var now = clock.GetTimestamp();
            if (next > end)
            {
                clock.Advance(timestamps.ToTimeSpan(end - now));
                return lines;
            }

            if (next > now)
            {
                clock.Advance(timestamps.ToTimeSpan(next - now));
            }
        }
    }

    private static void Input(SupervisorMachine machine, ScenarioHost host, string[] words, string where)
    {
        string Word(int i) => i < words.Length ? words[i] : throw new FormatException($"{where}: '{string.Join(' ', words)}' needs more words");
        switch (words[0])
        {
            case "boot":
                machine.Boot();
                break;
            case "exit":
            {
                var s = machine.Find(Word(1));
                var value = int.Parse(Word(3), CultureInfo.InvariantCulture);
                var exit = Word(2) == "code" ? ProcessExit.Code(value) : ProcessExit.KilledBy(value);
                machine.Exited(s.Name, s.Run, s.Pid ?? throw new FormatException($"{where}: {s.Name} has no process to exit"), exit);
                break;
            }

            case "exit-run":
            {
                // An exit reported for a given run and pid: how a late or stale report is replayed.
                var value = int.Parse(Word(5), CultureInfo.InvariantCulture);
                machine.Exited(Word(1), int.Parse(Word(2), CultureInfo.InvariantCulture), int.Parse(Word(3), CultureInfo.InvariantCulture),
                    Word(4) == "code" ? ProcessExit.Code(value) : ProcessExit.KilledBy(value));
                break;
            }

            case "result-run":
            {
                var s = machine.Find(Word(1));
                var index = s.Checks.Select((c, i) => (c, i)).Single(p => p.c.Definition.Name == Word(3)).i;
                machine.CheckCompleted(s.Name, int.Parse(Word(2), CultureInfo.InvariantCulture), index,
                    new CheckOutcome(Word(4) == "pass", false, Word(4), TimeSpan.FromMilliseconds(1)));
                break;
            }

            case "result":
            {
                var s = machine.Find(Word(1));
                var index = s.Checks.Select((c, i) => (c, i)).Single(p => p.c.Definition.Name == Word(2)).i;
                var outcome = Word(3) switch
                {
                    "pass" => new CheckOutcome(true, false, "ok", TimeSpan.FromMilliseconds(1)),
                    "fail" => new CheckOutcome(false, false, "failed", TimeSpan.FromMilliseconds(1)),
                    "not-running" => new CheckOutcome(false, true, "not running", TimeSpan.FromMilliseconds(1)),
                    var other => throw new FormatException($"{where}: '{other}' is not pass, fail or not-running"),
                };
                machine.CheckCompleted(s.Name, s.Run, index, outcome);
                break;
            }

            case "notify":
                machine.Notified(Word(1), NotifyMessage.Parse(Word(2).Replace(',', '\n')));
                break;
            case "hung":
                machine.ClientHung(Word(1), words.Length > 2 ? words[2] : string.Empty, TimeSpan.FromSeconds(1));
                break;
            case "start":
                Control(() => machine.Start(Word(1)));
                break;
            case "stop":
                Control(() => machine.Stop(Word(1)));
                break;
            case "restart":
                Control(() => machine.Restart(Word(1)));
                break;
            case "reload":
            {
                var text = string.Join(' ', words.Skip(1));
                var definitions = text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(l => ParseService(l, where)).ToList();
                try
                {
                    foreach (var line in machine.Reload(definitions))
                    {
                        host.Note(line);
                    }
                }
                catch (ServiceGraphException e)
                {
                    host.Note("refused: " + e.Message);
                }

                break;
            }

            case "shutdown":
                machine.BeginShutdown("apphbd is stopping");
                break;
            case "group":
                machine.SetGroupActive(Word(1), Word(2) == "on");
                break;
            case "spawn-fails":
                host.SpawnFails.Add(Word(1));
                break;
            case "adopt":
                host.Adoptions[Word(1)] = int.Parse(Word(2), CultureInfo.InvariantCulture);
                break;
            case "pidfile":
                host.PidFiles[Word(1)] = int.Parse(Word(2), CultureInfo.InvariantCulture);
                break;
            default:
                throw new FormatException($"{where}: unknown input '{words[0]}'");
        }

        void Control(Action action)
        {
            try
            {
                action();
            }
            catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException)
            {
                host.Note("refused: " + e.Message);
            }
        }
    }

    private static void Assert(Step step, SupervisorMachine machine, string[] words)
    {
        if (words is [_, "group", var group, var expected])
        {
            var actual = machine.IsGroupStopped(group) ? "stopped" : "not-stopped";
            if (actual != expected)
            {
                throw new ScenarioFailure($"{step.Where}: group {group} is {actual}, expected {expected}");
            }

            return;
        }

        var s = machine.Services.FirstOrDefault(x => x.Name == words[1]);
        if (words.Length > 2 && words[2] == "gone")
        {
            if (s is not null)
            {
                throw new ScenarioFailure($"{step.Where}: {words[1]} is still there ({ServiceRunStates.Name(s.State)})");
            }

            return;
        }

        if (s is null)
        {
            throw new ScenarioFailure($"{step.Where}: no service {words[1]}");
        }

        var facts = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["state"] = ServiceRunStates.Name(s.State),
            ["pid"] = s.Pid?.ToString(CultureInfo.InvariantCulture) ?? "none",
            ["restarts"] = s.Restarts.ToString(CultureInfo.InvariantCulture),
            ["wanted"] = s.Wanted ? "yes" : "no",
            ["waiting"] = s.WaitingFor ?? "none",
            ["exit"] = s.LastExit ?? "none",
            ["status"] = s.StatusText ?? "none",
            ["adopted"] = s.Adopted ? "yes" : "no",
        };
        foreach (var word in words.Skip(2))
        {
            var (key, value) = word.Contains('=', StringComparison.Ordinal) ? (word[..word.IndexOf('=')], word[(word.IndexOf('=') + 1)..].Replace('_', ' ')) : ("state", word);
            if (!facts.TryGetValue(key, out var actual))
            {
                throw new FormatException($"{step.Where}: unknown fact '{key}'");
            }

            if (actual != value)
            {
                throw new ScenarioFailure($"{step.Where}: {s.Name} {key} is '{actual}', expected '{value}' ({string.Join(", ", facts.Select(f => $"{f.Key}={f.Value}"))})");
            }
        }
    }

    private static ServiceDefinition ParseService(string line, string where)
    {
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length < 2 || words[0] != "service")
        {
            throw new FormatException($"{where}: '{line}' is not 'service NAME ...'");
        }

        var name = words[1];
        var requires = new List<string>();
        var readiness = Readiness.Immediate;
        var critical = false;
        string? pidfile = null;
        string group = ServiceDefinition.NodeGroup;
        HeartbeatCheck? heartbeat = null;
        var checks = new List<CheckDefinition>();
        var stopTimeout = TimeSpan.FromSeconds(1);
        var stopSignal = SignalNames.SIGTERM;
        var policy = RestartPolicy.Default;
        foreach (var option in words.Skip(2))
        {
            var (key, value) = option.Contains('=', StringComparison.Ordinal) ? (option[..option.IndexOf('=')], option[(option.IndexOf('=') + 1)..]) : (option, string.Empty);
            switch (key)
            {
                case "requires":
                    requires.AddRange(value.Split(','));
                    break;
                case "readiness":
                    readiness = value switch
                    {
                        "none" => Readiness.Immediate,
                        "notify" => new Readiness(ReadinessKind.Notify, TimeSpan.Zero),
                        "probe" => new Readiness(ReadinessKind.Probe, TimeSpan.Zero),
                        _ => new Readiness(ReadinessKind.Delay, Duration(value, where)),
                    };
                    break;
                case "critical":
                    critical = true;
                    break;
                case "pidfile":
                    pidfile = value;
                    break;
                case "group":
                    group = value;
                    break;
                case "heartbeat":
                {
                    var parts = value.Split(':');
                    heartbeat = new HeartbeatCheck(parts[0] == "notify" ? HeartbeatSource.Notify : HeartbeatSource.Client, Duration(parts[1], where),
                        parts.Length > 2 ? Action(parts[2], where) : CheckAction.Restart);
                    break;
                }

                case "check":
                {
                    var parts = value.Split(':');
                    var interval = Duration(parts[1], where);
                    checks.Add(new CheckDefinition(parts[0], CheckKind.Tcp, "127.0.0.1:1", [], 200, null, interval, interval,
                        int.Parse(parts[2], CultureInfo.InvariantCulture), Action(parts[3], where), Heavy: false));
                    break;
                }

                case "stop-timeout":
                    stopTimeout = Duration(value, where);
                    break;
                case "stop-signal":
                    _ = SignalNames.TryParse(value, out stopSignal);
                    break;
                case "delay":
                    policy = policy with { Delay = Duration(value, where) };
                    break;
                case "backoff":
                    policy = policy with { BackoffStep = Duration(value, where) };
                    break;
                case "max-delay":
                    policy = policy with { MaxDelay = Duration(value, where) };
                    break;
                case "stable-after":
                    policy = policy with { StableAfter = Duration(value, where) };
                    break;
                case "max-restarts":
                    policy = policy with { MaxRestarts = int.Parse(value, CultureInfo.InvariantCulture) };
                    break;
                case "window":
                    policy = policy with { Window = Duration(value, where) };
                    break;
                case "escalation":
                    policy = policy with
                    {
                        Escalation = value switch
                        {
                            "give-up" => EscalationAction.GiveUp,
                            "reboot" => EscalationAction.Reboot,
                            "failover" => EscalationAction.Failover,
                            _ => throw new FormatException($"{where}: escalation '{value}'"),
                        },
                    };
                    break;
                case "no-restart":
                    policy = policy with { DoNotRestartExitCodes = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToHashSet() };
                    break;
                default:
                    throw new FormatException($"{where}: unknown service option '{key}'");
            }
        }

        return new ServiceDefinition(name, ["/bin/" + name], null, [], null, null, null, null, stopSignal, stopTimeout,
            requires, readiness, policy, critical, pidfile, heartbeat, checks) { ResourceGroup = group };
    }

    private static CheckAction Action(string text, string where) => text switch
    {
        "restart" => CheckAction.Restart,
        "restart-dependents" => CheckAction.RestartWithDependents,
        "alert" => CheckAction.Alert,
        "escalate" => CheckAction.Escalate,
        _ => throw new FormatException($"{where}: action '{text}'"),
    };

    private static TimeSpan Duration(string text, string where)
    {
        var (number, unit) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 1.0)
            : text.EndsWith('s') ? (text[..^1], 1000.0)
            : text.EndsWith('m') ? (text[..^1], 60_000.0)
            : throw new FormatException($"{where}: '{text}' is not a duration (ms, s, m)");
        return TimeSpan.FromMilliseconds(double.Parse(number, CultureInfo.InvariantCulture) * unit);
    }

    private sealed record Step(string Input, string Where)
    {
        public List<string> Expected { get; } = [];
    }

    /// <summary>Plays the daemon's host: takes the machine's commands in order, renders them, and answers the ones
    /// whose result the machine waits for.</summary>
    private sealed class ScenarioHost(SupervisorMachine machine)
    {
        private readonly List<string> _lines = [];

        public HashSet<string> SpawnFails { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, int> Adoptions { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, int> PidFiles { get; } = new(StringComparer.Ordinal);

        public void Note(string line) => _lines.Add(line);

        public List<string> Apply(Action input)
        {
            _lines.Clear();
            input();
            while (machine.TryTakeCommand(out var command))
            {
                _lines.Add(Render(command));
                Answer(command);
            }

            return [.. _lines];
        }

        private void Answer(SupervisorCommand command)
        {
            switch (command)
            {
                case SupervisorCommand.Launch launch when SpawnFails.Remove(launch.Service):
                    machine.LaunchFailed(launch.Service, launch.Run, "No such file or directory (errno 2)");
                    break;
                case SupervisorCommand.Launch launch when Adoptions.Remove(launch.Service, out var adopted):
                    machine.Launched(launch.Service, launch.Run, adopted, LaunchOrigin.Adopted);
                    break;
                case SupervisorCommand.Launch launch:
                    machine.Launched(launch.Service, launch.Run, 100 + launch.Run, LaunchOrigin.Spawned);
                    break;
                case SupervisorCommand.ReadPidFile read:
                    machine.PidFileRead(read.Service, read.Run, PidFiles.Remove(read.Service, out var pid) ? pid : null, $"{read.PidFile} does not exist");
                    break;
            }
        }

        private static string Render(SupervisorCommand command) => command switch
        {
            SupervisorCommand.Launch l => $"launch {l.Service} #{l.Run}",
            SupervisorCommand.ReadPidFile r => $"read-pidfile {r.Service} #{r.Run}",
            SupervisorCommand.Signal s => s.ToString(),
            SupervisorCommand.RunCheck c => $"check {c.Service} {c.Definition.Name} #{c.Run}",
            SupervisorCommand.CancelChecks c => $"cancel-checks {c.Service} #{c.Run}",
            SupervisorCommand.OpenNotify o => $"open-notify {o.Service}",
            SupervisorCommand.CloseNotify c => $"close-notify {c.Service}",
            SupervisorCommand.WatchHeartbeats w => $"watch-heartbeats {w.Service} {w.Pid} {w.Interval.TotalMilliseconds:0}ms",
            SupervisorCommand.UnwatchHeartbeats u => $"unwatch-heartbeats {u.Service}",
            SupervisorCommand.Beat b => $"beat {b.Service}",
            SupervisorCommand.Publish p => p.ToString(),
            SupervisorCommand.RebootStarting => "reboot-starting",
            SupervisorCommand.RebootNode => "reboot-node",
            SupervisorCommand.RequestFailover f => $"failover {f.Service}",
            SupervisorCommand.Forget f => $"forget {f.Service}",
            _ => command.ToString(),
        };
    }
}

internal sealed class ScenarioFailure(string message, Exception? inner = null) : Exception(message, inner);
