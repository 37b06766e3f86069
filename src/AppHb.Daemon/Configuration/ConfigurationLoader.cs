using AppHb.Core.Supervision;
using AppHb.Linux.Realtime;
using AppHb.Linux.Watchdog;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace AppHb.Daemon.Configuration;

/// <summary>Reads apphbd.yaml over the embedded defaults and validates every key. All errors are collected, each with
/// file:line:column, the dotted key and what would be valid; any error makes the load fail.</summary>
public static class ConfigurationLoader
{
    private static readonly Dictionary<string, WatchdogBackend> Backends = new(StringComparer.Ordinal)
    {
        ["none"] = WatchdogBackend.None,
        ["linux"] = WatchdogBackend.Linux,
        ["gpio"] = WatchdogBackend.Gpio,
    };

    private static readonly Dictionary<string, RealtimePolicy> Policies = new(StringComparer.Ordinal)
    {
        ["fifo"] = RealtimePolicy.Fifo,
        ["rr"] = RealtimePolicy.RoundRobin,
    };

    /// <summary>Loads a file. A missing file is an error: apphbd never silently runs on defaults it was not told to use.</summary>
    public static ApphbdOptions LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException([$"{path}: cannot read the configuration: {e.Message}"]);
        }

        return Load(text, path);
    }

    /// <summary>The embedded defaults alone (what <c>apphbd --demo</c> starts from).</summary>
    public static ApphbdOptions Defaults() => Load(string.Empty, "(defaults)");

    public static ApphbdOptions Load(string yaml, string source)
    {
        var errors = new List<string>();
        var user = Parse(yaml, source, errors);
        var defaults = Parse(DefaultConfiguration.Yaml, "(defaults)", errors);
        var root = new YamlSection(source, string.Empty, user, defaults, errors);
        root.RejectUnknownKeys("socket", "clients", "watchdog", "realtime", "events", "services", "metrics", "snmp", "cluster", "replication");

        var socket = root.Child("socket");
        socket.RejectUnknownKeys("path", "mode", "group");
        var socketOptions = new SocketOptions(
            socket.String("path", p => p.StartsWith('/') ? (p.Length > 107 ? "is longer than the 107 bytes a Unix socket path may have" : null) : "must be an absolute path"),
            socket.FileMode("mode"),
            socket.OptionalString("group"));

        var clients = root.Child("clients");
        clients.RejectUnknownKeys("max", "max-connections-per-uid", "read-timeout", "send-timeout");
        var clientLimits = new ClientLimits(
            clients.Integer("max", 1, 1_000_000),
            clients.Integer("max-connections-per-uid", 1, 1_000_000),
            clients.Duration("read-timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1)),
            clients.Duration("send-timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1)));

        var watchdog = ReadWatchdog(root.Child("watchdog"));

        var realtime = root.Child("realtime");
        realtime.RejectUnknownKeys("enabled", "lock-memory", "policy", "priority");
        var realtimeOptions = new RealtimeOptions(realtime.Boolean("enabled"), realtime.Boolean("lock-memory"),
            realtime.Choice("policy", Policies), realtime.Integer("priority", 1, 99));

        var events = root.Child("events");
        events.RejectUnknownKeys("history");
        var eventOptions = new EventOptions(events.Integer("history", 1, 100_000));

        var services = ServicesConfiguration.Read(root.Child("services"), errors, pair: root.IsSet("cluster"));
        var cluster = ClusterConfiguration.Read(root, services);
        if (cluster is not null)
        {
            // The pair's group runs on the active node only (the supervisor keeps it inactive until the pair says).
            services = [.. services.Select(s => cluster.Group.Contains(s.Name) ? s with { ResourceGroup = ServiceDefinition.PairGroup } : s)];
        }

        var replication = ReplicationConfiguration.Read(root);

        var metrics = root.Child("metrics");
        metrics.RejectUnknownKeys("listen");
        System.Net.IPEndPoint? listen = null;
        var listenText = metrics.String("listen");
        if (listenText != "off" && !(System.Net.IPEndPoint.TryParse(listenText, out listen) && listenText.Contains(':', StringComparison.Ordinal) && !listenText.EndsWith(']')))
        {
            metrics.Error("listen", $"\"{listenText}\" is not an address and port like 127.0.0.1:9747 or [::1]:9747, or off");
        }

        var snmp = root.Child("snmp");
        snmp.RejectUnknownKeys("agentx");
        AppHb.Export.Snmp.AgentX.AgentXEndpoint? agentx = null;
        var agentxText = snmp.String("agentx");
        if (agentxText != "off" && !AppHb.Export.Snmp.AgentX.AgentXEndpoint.TryParse(agentxText, out agentx, out var agentxError))
        {
            snmp.Error("agentx", agentxError!);
        }

        if (errors.Count > 0)
        {
            throw new ConfigurationException(errors);
        }

        return new ApphbdOptions(socketOptions, clientLimits, watchdog, realtimeOptions, eventOptions, services, new MetricsOptions(listen), new SnmpOptions(agentx), cluster, replication);
    }

    private static WatchdogOptions ReadWatchdog(YamlSection section)
    {
        section.RejectUnknownKeys("backend", "device", "timeout", "period", "gpio");
        var backend = section.Choice("backend", Backends);
        var device = section.String("device", d => d.StartsWith("/dev/", StringComparison.Ordinal) ? null : "must be a device path under /dev");
        var timeout = section.Duration("timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1));
        var period = section.Duration("period", TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(30));
        if (period > timeout / 2)
        {
            section.Error("period", $"the tickle period {period.TotalMilliseconds:0}ms must be at most half the timeout ({timeout.TotalMilliseconds:0}ms), so one late tickle never resets the board");
        }

        if (backend == WatchdogBackend.Linux && timeout.TotalSeconds != Math.Floor(timeout.TotalSeconds))
        {
            section.Error("timeout", "the linux watchdog API programs whole seconds; use a value like 30s");
        }

        GpioWatchdogSettings? gpio = null;
        var gpioSection = section.Child("gpio");
        if (backend == WatchdogBackend.Gpio || section.IsSet("gpio"))
        {
            gpioSection.RejectUnknownKeys("chip", "line", "active-low", "enable-line", "enable-active-low");
            if (backend == WatchdogBackend.Gpio && !section.IsSet("gpio"))
            {
                section.Error("gpio", "backend gpio needs a gpio section with at least chip and line");
            }
            else
            {
                var line = gpioSection.OptionalUnsigned("line");
                if (line is null)
                {
                    gpioSection.Error("line", "required: the line offset of the watchdog's WDI input on the chip");
                }

                var chip = gpioSection.OptionalString("chip");
                if (chip is null || !chip.StartsWith("/dev/gpiochip", StringComparison.Ordinal))
                {
                    gpioSection.Error("chip", "required: the GPIO character device, like /dev/gpiochip0");
                }

                var enableLine = gpioSection.OptionalUnsigned("enable-line");
                if (enableLine is not null && enableLine == line)
                {
                    gpioSection.Error("enable-line", "must differ from line");
                }

                gpio = new GpioWatchdogSettings(chip ?? string.Empty, line ?? 0,
                    gpioSection.IsSet("active-low") && gpioSection.Boolean("active-low"), enableLine,
                    gpioSection.IsSet("enable-active-low") && gpioSection.Boolean("enable-active-low"));
            }
        }

        return new WatchdogOptions(new WatchdogSettings(backend, device, timeout, gpio), period);
    }

    private static YamlMappingNode? Parse(string yaml, string source, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(yaml))
        {
            return null;
        }

        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
            {
                return null;
            }

            if (stream.Documents.Count > 1)
            {
                errors.Add($"{source}:{stream.Documents[1].RootNode.Start.Line}: only one YAML document is allowed");
            }

            if (stream.Documents[0].RootNode is YamlMappingNode mapping)
            {
                return mapping;
            }

            errors.Add($"{source}:{stream.Documents[0].RootNode.Start.Line}: the top level must be a mapping of sections (socket, clients, watchdog, realtime, events, services, metrics)");
            return null;
        }
        catch (YamlException e)
        {
            errors.Add($"{source}:{e.Start.Line}:{e.Start.Column}: not valid YAML: {e.InnerException?.Message ?? e.Message}");
            return null;
        }
    }
}
