using System.Globalization;
using System.Text.RegularExpressions;
using AppHb.Core.Supervision;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;

namespace AppHb.Daemon.Configuration;

/// <summary>Reads the <c>services:</c> section: one mapping per service, keyed by its name.</summary>
internal static class ServicesConfiguration
{
    internal const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private static readonly string[] ServiceKeys =
    [
        "command", "directory", "environment", "user", "group", "umask", "output", "stop-signal", "stop-timeout", "requires",
        "readiness", "restart", "critical", "pidfile", "heartbeat", "checks",
    ];

    private static readonly Dictionary<string, EscalationAction> Escalations = new(StringComparer.Ordinal)
    {
        ["give-up"] = EscalationAction.GiveUp,
        ["reboot"] = EscalationAction.Reboot,
        ["failover"] = EscalationAction.Failover,
    };

    private static readonly Dictionary<string, CheckAction> Actions = new(StringComparer.Ordinal)
    {
        ["restart"] = CheckAction.Restart,
        ["restart-dependents"] = CheckAction.RestartWithDependents,
        ["alert"] = CheckAction.Alert,
        ["escalate"] = CheckAction.Escalate,
    };

    private static readonly Dictionary<string, CheckKind> Kinds = new(StringComparer.Ordinal)
    {
        ["tcp"] = CheckKind.Tcp,
        ["http"] = CheckKind.Http,
        ["command"] = CheckKind.Command,
        ["lsb"] = CheckKind.Lsb,
    };

    private static readonly Dictionary<string, HeartbeatSource> Sources = new(StringComparer.Ordinal)
    {
        ["client"] = HeartbeatSource.Client,
        ["notify"] = HeartbeatSource.Notify,
    };

    private static readonly Dictionary<string, bool> Depths = new(StringComparer.Ordinal)
    {
        ["light"] = false,
        ["heavy"] = true,
    };

    /// <summary>[a-z0-9][a-z0-9_.-]{0,62}, by hand: the regex engine would cost the daemon its resident memory for
    /// one check at load.</summary>
    private static bool IsServiceName(string name) =>
        name.Length is >= 1 and <= 63 && (char.IsAsciiLetterLower(name[0]) || char.IsAsciiDigit(name[0]))
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '.' or '-');

    /// <param name="pair">The configuration has a cluster section: a service may escalate to a failover.</param>
    public static IReadOnlyList<ServiceDefinition> Read(YamlSection services, List<string> errors, bool pair = false)
    {
        var definitions = new List<ServiceDefinition>();
        foreach (var name in services.UserKeys())
        {
            if (!IsServiceName(name))
            {
                services.Error(name, "a service name is 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit");
                continue;
            }

            definitions.Add(ReadService(name, services.Child(name), pair));
        }

        var errorsBefore = errors.Count;
        try
        {
            ServiceGraph.Build(definitions.ToDictionary(d => d.Name, d => d.Requires));
        }
        catch (ServiceGraphException e)
        {
            foreach (var problem in e.Problems)
            {
                services.Error("requires", problem);
            }
        }

        _ = errorsBefore;
        return definitions;
    }

    private static ServiceDefinition ReadService(string name, YamlSection section, bool pair)
    {
        section.RejectUnknownKeys(ServiceKeys);
        var environment = section.StringMap("environment");
        var path = environment.LastOrDefault(e => e.Key == "PATH").Value ?? DefaultPath;
        var command = section.OptionalStringList("command");
        if (command is null || command.Count == 0)
        {
            section.Error("command", "required: the program and its arguments, as a list ([/usr/bin/prog, --flag]) or one line");
            command = ["/bin/false"];
        }
        else if (ResolveExecutable(command[0], path, out var problem) is { } resolved)
        {
            command = [resolved, .. command.Skip(1)];
        }
        else
        {
            section.Error("command", problem);
        }

        var directory = section.OptionalString("directory");
        if (directory is not null && !Directory.Exists(directory))
        {
            section.Error("directory", $"{directory} is not an existing directory");
        }

        var user = section.OptionalString("user");
        if (user is not null && !UnixAccounts.TryGetUser(user, out _))
        {
            section.Error("user", $"no user \"{user}\" on this system");
        }

        var group = section.OptionalString("group");
        if (group is not null && !UnixAccounts.TryGetGroupId(group, out _))
        {
            section.Error("group", $"no group \"{group}\" on this system");
        }

        UnixFileMode? umask = section.IsSet("umask") ? section.FileMode("umask") : null;
        var output = section.OptionalString("output") ?? "journal";
        string? outputFile = null;
        if (output != "journal")
        {
            if (!output.StartsWith('/'))
            {
                section.Error("output", $"\"{output}\" is neither journal nor an absolute file path");
            }
            else if (!Directory.Exists(System.IO.Path.GetDirectoryName(output)))
            {
                section.Error("output", $"the directory of {output} does not exist");
            }

            outputFile = output;
        }

        var stopSignal = SignalNames.SIGTERM;
        if (section.OptionalString("stop-signal") is { } signalText && !SignalNames.TryParse(signalText, out stopSignal))
        {
            section.Error("stop-signal", $"\"{signalText}\" is not a signal; use a name like TERM, INT, QUIT, HUP or a number");
        }

        var stopTimeout = section.IsSet("stop-timeout") ? section.Duration("stop-timeout", TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(10)) : TimeSpan.FromSeconds(10);
        var requires = section.OptionalStringList("requires") ?? [];
        var readiness = ReadReadiness(section);
        var restart = ReadRestart(section.Child("restart"), section.IsSet("restart"), pair);
        var critical = section.IsSet("critical") && section.Boolean("critical");
        var pidfile = section.OptionalString("pidfile");
        if (pidfile is not null && !pidfile.StartsWith('/'))
        {
            section.Error("pidfile", "must be an absolute path");
        }

        HeartbeatCheck? heartbeat = null;
        if (section.IsSet("heartbeat"))
        {
            var hb = section.Child("heartbeat");
            hb.RejectUnknownKeys("source", "interval", "action");
            heartbeat = new HeartbeatCheck(
                hb.IsSet("source") ? hb.Choice("source", Sources) : HeartbeatSource.Client,
                hb.Duration("interval", TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1)),
                hb.IsSet("action") ? hb.Choice("action", Actions) : CheckAction.Restart);
            if (heartbeat.Source == HeartbeatSource.Notify && pidfile is not null)
            {
                hb.Error("source", "notify heartbeats need a child apphbd starts; a pidfile service forks away from its NOTIFY_SOCKET environment");
            }
        }

        var checks = section.MappingList("checks").Select((c, i) => ReadCheck(c, i)).ToList();
        if (readiness.Kind == ReadinessKind.Probe && checks.Count == 0)
        {
            section.Error("readiness", "probe readiness needs at least one check (the first passing check makes the service ready)");
        }

        if (checks.Select(c => c.Name).Distinct(StringComparer.Ordinal).Count() != checks.Count)
        {
            section.Error("checks", "check names must be unique within a service");
        }

        return new ServiceDefinition(name, command, directory, environment, user, group, umask, outputFile, stopSignal, stopTimeout,
            requires, readiness, restart, critical, pidfile, heartbeat, checks);
    }

    private static Readiness ReadReadiness(YamlSection section)
    {
        var text = section.OptionalString("readiness");
        switch (text)
        {
            case null or "none":
                return Readiness.Immediate;
            case "notify":
                return new Readiness(ReadinessKind.Notify, TimeSpan.Zero);
            case "probe":
                return new Readiness(ReadinessKind.Probe, TimeSpan.Zero);
        }

        if (YamlSection.TryParseDuration(text, out var delay) && delay > TimeSpan.Zero && delay <= TimeSpan.FromMinutes(10))
        {
            return new Readiness(ReadinessKind.Delay, delay);
        }

        section.Error("readiness", $"\"{text}\" is not valid; use none, notify, probe, or a delay like 2s (at most 10m)");
        return Readiness.Immediate;
    }

    private static RestartPolicy ReadRestart(YamlSection section, bool present, bool pair)
    {
        var defaults = RestartPolicy.Default;
        if (!present)
        {
            return defaults;
        }

        section.RejectUnknownKeys("delay", "backoff", "max-delay", "stable-after", "max-restarts", "window", "escalation", "no-restart-exit-codes");
        TimeSpan Span(string key, TimeSpan fallback, TimeSpan min) => section.IsSet(key) ? section.Duration(key, min, TimeSpan.FromHours(1)) : fallback;
        var escalation = section.IsSet("escalation") ? section.Choice("escalation", Escalations) : defaults.Escalation;
        if (escalation == EscalationAction.Failover && !pair)
        {
            section.Error("escalation", "failover needs the peer node (level 3): add a cluster section, or use give-up or reboot");
        }

        var codes = new HashSet<int>(defaults.DoNotRestartExitCodes);
        if (section.OptionalStringList("no-restart-exit-codes") is { } texts)
        {
            codes.Clear();
            foreach (var text in texts)
            {
                if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && code <= 255)
                {
                    codes.Add(code);
                }
                else
                {
                    section.Error("no-restart-exit-codes", $"\"{text}\" is not an exit code (0 to 255)");
                }
            }
        }

        return new RestartPolicy(
            Span("delay", defaults.Delay, TimeSpan.Zero),
            Span("backoff", defaults.BackoffStep, TimeSpan.Zero),
            defaults.Multiplier,
            Span("max-delay", defaults.MaxDelay, TimeSpan.FromMilliseconds(1)),
            Span("stable-after", defaults.StableAfter, TimeSpan.Zero),
            section.IsSet("max-restarts") ? section.Integer("max-restarts", 0, 1_000_000) : defaults.MaxRestarts,
            Span("window", defaults.Window, TimeSpan.FromSeconds(1)),
            escalation,
            codes);
    }

    private static CheckDefinition ReadCheck(YamlSection section, int index)
    {
        section.RejectUnknownKeys("name", "type", "address", "url", "status", "body", "command", "script", "interval", "timeout", "failures", "action", "depth");
        var kind = section.Choice("type", Kinds);
        var name = section.OptionalString("name") ?? $"{kind.ToString().ToLowerInvariant()}{index}";
        var target = string.Empty;
        IReadOnlyList<string> command = [];
        string? body = null;
        var status = 200;
        switch (kind)
        {
            case CheckKind.Tcp:
                target = section.String("address", a => TryParseHostPort(a, out _, out _) ? null : "must be host:port, like 127.0.0.1:8080 or [::1]:8080");
                break;
            case CheckKind.Http:
                target = section.String("url", u => Uri.TryCreate(u, UriKind.Absolute, out var uri) && (uri.Scheme == "http" || uri.Scheme == "https") ? null : "must be an absolute http:// or https:// URL");
                status = section.IsSet("status") ? section.Integer("status", 100, 599) : 200;
                body = section.OptionalString("body");
                if (body is not null)
                {
                    try
                    {
                        _ = new Regex(body, RegexOptions.None, TimeSpan.FromSeconds(1));
                    }
                    catch (ArgumentException e)
                    {
                        section.Error("body", $"not a valid regular expression: {e.Message}");
                    }
                }

                break;
            case CheckKind.Command:
                command = section.OptionalStringList("command") ?? [];
                if (command.Count == 0)
                {
                    section.Error("command", "required for a command check");
                }
                else if (ResolveExecutable(command[0], DefaultPath, out var problem) is { } resolved)
                {
                    command = [resolved, .. command.Skip(1)];
                }
                else
                {
                    section.Error("command", problem);
                }

                break;
            case CheckKind.Lsb:
                target = section.String("script", s => File.Exists(s) ? null : $"{s} does not exist");
                break;
        }

        var interval = section.IsSet("interval") ? section.Duration("interval", TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(24)) : TimeSpan.FromSeconds(10);
        var timeout = section.IsSet("timeout") ? section.Duration("timeout", TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(10)) : TimeSpan.FromSeconds(5);
        if (timeout > interval)
        {
            section.Error("timeout", "must not exceed the check's interval");
        }

        return new CheckDefinition(name, kind, target, command, status, body, interval, timeout,
            section.IsSet("failures") ? section.Integer("failures", 1, 1000) : 3,
            section.IsSet("action") ? section.Choice("action", Actions) : CheckAction.Restart,
            section.IsSet("depth") && section.Choice("depth", Depths));
    }

    internal static bool TryParseHostPort(string text, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }

        host = text[..colon].Trim('[', ']');
        return host.Length > 0;
    }

    private static string? ResolveExecutable(string program, string path, out string problem)
    {
        problem = string.Empty;
        if (program.Contains('/', StringComparison.Ordinal))
        {
            if (!program.StartsWith('/'))
            {
                problem = $"\"{program}\" must be an absolute path or a bare name found in PATH";
                return null;
            }

            if (!IsExecutable(program))
            {
                problem = $"{program} does not exist or is not executable";
                return null;
            }

            return program;
        }

        foreach (var directory in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = System.IO.Path.Combine(directory, program);
            if (IsExecutable(candidate))
            {
                return candidate;
            }
        }

        problem = $"\"{program}\" is not found in PATH ({path})";
        return null;
    }

    private static bool IsExecutable(string file) =>
        File.Exists(file) && (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
}
