using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Ours = AppHb.Export.Metrics;

namespace AppHb.Benchmarks;

/// <summary>The packages the project card names, measured against what AppHb uses instead, side by side in one run:
/// prometheus-net against AppHb.Export's metrics (the 1,000-client exposition, time and memory, same samples);
/// Microsoft.Extensions.Hosting.Systemd's notifier against apphbd's (what each sends, and what each does when the
/// notify socket is gone); System.Device.Gpio's drivers (how each reaches the GPIO character device, what its API can
/// request); Iot.Device.Bindings (what it adds to a trimmed publish, what trimming says, what CpuTemperature does
/// here). The findings and the decisions are in docs/dependencies.md.</summary>
internal sealed class PackagesBenchmark(string apphbd, string work)
{
    private const int Clients = 1000;
    private const int Services = 50;
    private const int Rounds = 400;

    public async Task<string> RunAsync()
    {
        var report = new StringBuilder();
        Metrics(report);
        report.AppendLine();
        await SystemdAsync(report);
        report.AppendLine();
        Gpio(report);
        report.AppendLine();
        IotBindings(report);
        return report.ToString();
    }

    // ---- prometheus-net ----

    private static void Metrics(StringBuilder report)
    {
        var values = new Random(42);
        var clientValues = Enumerable.Range(0, Clients).Select(i => (Name: $"client{i:0000}", Age: Math.Round(values.NextDouble() * 10, 3), Interval: 10.0, Hung: i % 97 == 0 ? 1.0 : 0.0)).ToList();

        var before = GC.GetTotalMemory(forceFullCollection: true);
        var ours = new Ours.CollectorRegistry();
        FillOurs(ours, clientValues);
        var ourBuffer = new ArrayBufferWriter<byte>(1 << 20);
        Ours.TextSerializer.Serialize(ours.Collect(), openMetrics: false, ourBuffer);
        var ourText = Encoding.UTF8.GetString(ourBuffer.WrittenSpan);
        var ourMemory = GC.GetTotalMemory(forceFullCollection: true) - before;

        before = GC.GetTotalMemory(forceFullCollection: true);
        var theirs = Prometheus.Metrics.NewCustomRegistry();
        FillTheirs(Prometheus.Metrics.WithCustomRegistry(theirs), clientValues);
        using var theirStream = new MemoryStream(1 << 20);
        theirs.CollectAndExportAsTextAsync(theirStream).GetAwaiter().GetResult();
        var theirText = Encoding.UTF8.GetString(theirStream.GetBuffer(), 0, (int)theirStream.Length);
        var theirMemory = GC.GetTotalMemory(forceFullCollection: true) - before;

        var (same, difference) = SameSamples(ourText, theirText);

        var ourTimes = new List<double>(Rounds);
        var theirTimes = new List<double>(Rounds);
        for (var round = 0; round < Rounds + 50; round++)
        {
            // Alternated, so both see the same machine; the first 50 rounds warm the JIT and the pools.
            var start = Stopwatch.GetTimestamp();
            ourBuffer.ResetWrittenCount();
            Ours.TextSerializer.Serialize(ours.Collect(), openMetrics: false, ourBuffer);
            var ourElapsed = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            start = Stopwatch.GetTimestamp();
            theirStream.SetLength(0);
            theirs.CollectAndExportAsTextAsync(theirStream).GetAwaiter().GetResult();
            var theirElapsed = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            if (round >= 50)
            {
                ourTimes.Add(ourElapsed);
                theirTimes.Add(theirElapsed);
            }
        }

        ourTimes.Sort();
        theirTimes.Sort();
        var ourP50 = Percentiles.NearestRank(ourTimes, 0.5);
        var theirP50 = Percentiles.NearestRank(theirTimes, 0.5);
        report.AppendLine(CultureInfo.InvariantCulture, $"### Metrics: apphbd's exposition ({Clients:N0} clients x 3 series, {Clients:N0} x 3 counters, {Services} services with a 12-bucket histogram), {Rounds} serialisations each, alternated");
        report.AppendLine();
        report.AppendLine("| library | p50 us | p99 us | bytes | managed memory held, KB | p50 vs AppHb.Export |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| AppHb.Export.Metrics | {ourP50:0} | {Percentiles.NearestRank(ourTimes, 0.99):0} | {ourText.Length:N0} | {ourMemory / 1024:N0} | 1.00x |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| prometheus-net {typeof(Prometheus.Metrics).Assembly.GetName().Version} | {theirP50:0} | {Percentiles.NearestRank(theirTimes, 0.99):0} | {theirText.Length:N0} | {theirMemory / 1024:N0} | {theirP50 / ourP50:0.00}x |");
        report.AppendLine();
        report.AppendLine(same
            ? "Both expose the same samples (every name, label set and value equal; comments and number spelling aside)."
            : $"The samples differ: {difference}");
    }

    private static void FillOurs(Ours.CollectorRegistry registry, List<(string Name, double Age, double Interval, double Hung)> clients)
    {
        var age = registry.CreateGauge("apphb_client_last_beat_age_seconds", "Seconds since the client's last beat.", "name", "client_instance");
        var interval = registry.CreateGauge("apphb_client_interval_seconds", "The client's heartbeat interval.", "name", "client_instance");
        var hung = registry.CreateGauge("apphb_client_is_hung", "1 while the client is hung.", "name", "client_instance");
        var warns = registry.CreateCounter("apphb_client_warn_total", "Warn events by client name.", "name");
        var hungs = registry.CreateCounter("apphb_client_hung_total", "Hung events by client name.", "name");
        var died = registry.CreateCounter("apphb_client_died_total", "Died events by client name.", "name");
        foreach (var c in clients)
        {
            age.WithLabels(c.Name, string.Empty).Set(c.Age);
            interval.WithLabels(c.Name, string.Empty).Set(c.Interval);
            hung.WithLabels(c.Name, string.Empty).Set(c.Hung);
            warns.WithLabels(c.Name).Inc(c.Hung * 3);
            hungs.WithLabels(c.Name).Inc(c.Hung);
            died.WithLabels(c.Name).Inc(0);
        }

        var up = registry.CreateGauge("apphb_service_up", "1 while the service runs.", "service");
        var restarts = registry.CreateCounter("apphb_service_restarts_total", "Restarts of the service.", "service");
        var duration = registry.CreateHistogram("apphb_service_check_duration_seconds", "Check durations.", Buckets, "service", "check");
        for (var s = 0; s < Services; s++)
        {
            var name = $"service{s:00}";
            up.WithLabels(name).Set(1);
            restarts.WithLabels(name).Inc(s);
            foreach (var sample in Durations(s))
            {
                duration.WithLabels(name, "probe").Observe(sample);
            }
        }
    }

    private static void FillTheirs(Prometheus.MetricFactory factory, List<(string Name, double Age, double Interval, double Hung)> clients)
    {
        var age = factory.CreateGauge("apphb_client_last_beat_age_seconds", "Seconds since the client's last beat.", ["name", "client_instance"]);
        var interval = factory.CreateGauge("apphb_client_interval_seconds", "The client's heartbeat interval.", ["name", "client_instance"]);
        var hung = factory.CreateGauge("apphb_client_is_hung", "1 while the client is hung.", ["name", "client_instance"]);
        var warns = factory.CreateCounter("apphb_client_warn_total", "Warn events by client name.", ["name"]);
        var hungs = factory.CreateCounter("apphb_client_hung_total", "Hung events by client name.", ["name"]);
        var died = factory.CreateCounter("apphb_client_died_total", "Died events by client name.", ["name"]);
        foreach (var c in clients)
        {
            age.WithLabels(c.Name, string.Empty).Set(c.Age);
            interval.WithLabels(c.Name, string.Empty).Set(c.Interval);
            hung.WithLabels(c.Name, string.Empty).Set(c.Hung);
            warns.WithLabels(c.Name).Inc(c.Hung * 3);
            hungs.WithLabels(c.Name).Inc(c.Hung);
            died.WithLabels(c.Name).Inc(0);
        }

        var up = factory.CreateGauge("apphb_service_up", "1 while the service runs.", ["service"]);
        var restarts = factory.CreateCounter("apphb_service_restarts_total", "Restarts of the service.", ["service"]);
        var duration = factory.CreateHistogram("apphb_service_check_duration_seconds", "Check durations.",
            new Prometheus.HistogramConfiguration { Buckets = Buckets, LabelNames = ["service", "check"] });
        for (var s = 0; s < Services; s++)
        {
            var name = $"service{s:00}";
            up.WithLabels(name).Set(1);
            restarts.WithLabels(name).Inc(s);
            foreach (var sample in Durations(s))
            {
                duration.WithLabels(name, "probe").Observe(sample);
            }
        }
    }

    private static readonly double[] Buckets = Ours.Histogram.ExponentialBuckets(0.0005, 2, 12);

    private static IEnumerable<double> Durations(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, 20).Select(_ => Math.Round(random.NextDouble() / 10, 4));
    }

    /// <summary>Every sample line as (name and labels, value), comments skipped, values compared as numbers.</summary>
    private static (bool Same, string Difference) SameSamples(string ours, string theirs)
    {
        static Dictionary<string, double> Samples(string text) => text.Split('\n')
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => (Key: l[..l.LastIndexOf(' ')], Value: l[(l.LastIndexOf(' ') + 1)..]))
            .ToDictionary(p => p.Key, p => double.Parse(p.Value.Replace("+Inf", "Infinity", StringComparison.Ordinal), CultureInfo.InvariantCulture));

        var a = Samples(ours);
        var b = Samples(theirs);
        var onlyOurs = a.Keys.Except(b.Keys).ToList();
        var onlyTheirs = b.Keys.Except(a.Keys).ToList();
        var unequal = a.Keys.Intersect(b.Keys).Where(k => Math.Abs(a[k] - b[k]) > 1e-9 * Math.Max(1, Math.Abs(a[k]))).ToList();
        return onlyOurs.Count == 0 && onlyTheirs.Count == 0 && unequal.Count == 0
            ? (true, string.Empty)
            : (false, $"{onlyOurs.Count} only in ours (e.g. {onlyOurs.FirstOrDefault()}), {onlyTheirs.Count} only in prometheus-net's (e.g. {onlyTheirs.FirstOrDefault()}), {unequal.Count} with other values (e.g. {unequal.FirstOrDefault()})");
    }

    // ---- Microsoft.Extensions.Hosting.Systemd ----

    private async Task SystemdAsync(StringBuilder report)
    {
        var socketPath = Path.Combine(work, "notify.sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        var buffer = new byte[4096];

        string Drain()
        {
            var got = new List<string>();
            while (socket.Available > 0)
            {
                var read = socket.Receive(buffer);
                got.Add(Encoding.UTF8.GetString(buffer, 0, read).Replace('\n', ' '));
            }

            return got.Count == 0 ? "(nothing)" : $"{got.Count} datagram(s): " + string.Join(" | ", got.Take(3).Select(g => g.Length > 80 ? g[..80] + "..." : g)) + (got.Count > 3 ? " | ..." : string.Empty);
        }

        // The package: its notifier as a host would use it, on this socket, asked for a watchdog every 100 ms.
        Environment.SetEnvironmentVariable("NOTIFY_SOCKET", socketPath);
        Environment.SetEnvironmentVariable("WATCHDOG_USEC", "200000");
        var theirs = new Microsoft.Extensions.Hosting.Systemd.SystemdNotifier();
        theirs.Notify(Microsoft.Extensions.Hosting.Systemd.ServiceState.Ready);
        await Task.Delay(100);
        var theirReady = Drain();
        await Task.Delay(600);
        var theirPings = Drain();
        var stateType = typeof(Microsoft.Extensions.Hosting.Systemd.ServiceState);
        var theirStates = stateType.GetProperties(BindingFlags.Public | BindingFlags.Static).Select(p => p.Name)
            .Concat(stateType.GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => f.Name)).Order().ToList();

        // apphbd, as systemd would run it: the same socket and WATCHDOG_USEC in its environment.
        var config = Path.Combine(work, "notify-apphbd.yaml");
        await File.WriteAllTextAsync(config, $"socket:\n  path: {Path.Combine(work, "notify-apphbd.sock")}\nwatchdog:\n  backend: none\n  period: 50ms\nmetrics:\n  listen: off\nsnmp:\n  agentx: off\n");
        var info = new ProcessStartInfo(apphbd, ["--config", config]) { RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment["NOTIFY_SOCKET"] = socketPath;
        info.Environment["WATCHDOG_USEC"] = "200000";
        using var daemon = Process.Start(info)!;
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        daemon.OutputDataReceived += (_, e) => { if (e.Data is { } line) { log.Enqueue(line); } };
        daemon.ErrorDataReceived += (_, e) => { if (e.Data is { } line) { log.Enqueue(line); } };
        daemon.BeginOutputReadLine();
        daemon.BeginErrorReadLine();
        var waited = Stopwatch.StartNew();
        while (socket.Available == 0 && waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(10);
        }

        await Task.Delay(100);
        var ourReady = Drain();
        await Task.Delay(600);
        var ourPings = Drain();

        socket.Close();
        File.Delete(socketPath);
        var theirGone = Outcome(() => theirs.Notify(Microsoft.Extensions.Hosting.Systemd.ServiceState.Stopping));
        // apphbd keeps pinging (every 100 ms) into the void for a second, then stops in order.
        await Task.Delay(1000);
        var ourGone = daemon.HasExited ? $"exited ({daemon.ExitCode})" : "keeps running";
        _ = RunningProcesses.Kill(daemon.Id, 15);
        await daemon.WaitForExitAsync();
        ourGone += $", then an orderly stop exits {daemon.ExitCode}";

        report.AppendLine("### systemd notification: Microsoft.Extensions.Hosting.Systemd's SystemdNotifier and apphbd, each on a NOTIFY_SOCKET with WATCHDOG_USEC=200000");
        report.AppendLine();
        report.AppendLine("| | Microsoft.Extensions.Hosting.Systemd " + typeof(Microsoft.Extensions.Hosting.Systemd.SystemdNotifier).Assembly.GetName().Version + " | apphbd |");
        report.AppendLine("|---|---|---|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| at ready | `{theirReady}` | `{ourReady}` |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| the next 600 ms | `{theirPings}` (its ServiceState has {string.Join(", ", theirStates)}: no watchdog) | `{ourPings}` |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| the notify socket removed, then one notification | {theirGone} | {ourGone} |");
    }

    private static string Outcome(Action action)
    {
        try
        {
            action();
            return "returns quietly";
        }
        catch (Exception e)
        {
            return $"throws {e.GetType().Name}: {e.Message}";
        }
    }

    // ---- System.Device.Gpio ----

    private static void Gpio(StringBuilder report)
    {
        var assembly = typeof(System.Device.Gpio.GpioController).Assembly;
        var drivers = assembly.GetExportedTypes().Where(t => t.IsSubclassOf(typeof(System.Device.Gpio.GpioDriver)) && !t.IsAbstract).Select(t => t.FullName).Order().ToList();
        var natives = assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Select(m => m.GetCustomAttribute<DllImportAttribute>()?.Value ?? m.GetCustomAttribute<LibraryImportAttribute>()?.LibraryName)
            .Where(l => l is not null).Distinct().Order().ToList();
        var openPin = typeof(System.Device.Gpio.GpioController).GetMethods().Where(m => m.Name == "OpenPin")
            .Select(m => $"OpenPin({string.Join(", ", m.GetParameters().Select(p => p.ParameterType.Name))})").Order().ToList();
        var modes = Enum.GetNames<System.Device.Gpio.PinMode>();
        var controller = Outcome(() =>
        {
            using var gpio = new System.Device.Gpio.GpioController();
        });
        var chips = Directory.Exists("/dev") ? Directory.GetFiles("/dev", "gpiochip*").Length : 0;
        report.AppendLine(CultureInfo.InvariantCulture, $"### GPIO: System.Device.Gpio {assembly.GetName().Version}, read by reflection and run here ({chips} /dev/gpiochip* on this machine)");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"- drivers: {string.Join(", ", drivers)}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- native libraries it calls: {string.Join(", ", natives)}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- GpioController: {string.Join(", ", openPin)}; PinMode: {string.Join(", ", modes)}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- `new GpioController()` here: {controller}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- libgpiod in this distribution (apt-cache policy): {Candidates("libgpiod2", "libgpiod3")}");
        report.AppendLine("- AppHb's GpioOutputLines: GPIO_V2_GET_LINE_IOCTL on /dev/gpiochipN directly (no native library), the line requested as an output with its active-low flag and its initial value in the one request (checked against linux/gpio.h by KernelHeaderTests)");
    }

    /// <summary>Debian's candidate version of each package, or "none".</summary>
    private static string Candidates(params string[] packages) => string.Join("; ", packages.Select(p =>
    {
        try
        {
            var policy = Machine.Run("apt-cache", "policy", p);
            var candidate = policy.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Candidate:", StringComparison.Ordinal))?["Candidate:".Length..].Trim();
            return $"{p} {(string.IsNullOrEmpty(candidate) || candidate == "(none)" ? "none" : candidate)}";
        }
        catch (InvalidOperationException)
        {
            return $"{p} unknown";
        }
    }));

    // ---- Iot.Device.Bindings ----

    private void IotBindings(StringBuilder report)
    {
        var bare = Publish("bare", references: string.Empty, program: "System.Console.WriteLine(System.Environment.ProcessorCount);");
        var bindings = Publish("bindings", references: "<PackageReference Include=\"Iot.Device.Bindings\" Version=\"4.2.0\" />",
            program: """
                try
                {
                    using var cpu = new Iot.Device.CpuTemperature.CpuTemperature();
                    System.Console.WriteLine($"IsAvailable={cpu.IsAvailable}");
                    System.Console.WriteLine($"Temperature={cpu.Temperature}");
                }
                catch (System.Exception e)
                {
                    System.Console.WriteLine($"throws {e.GetType().Name}: {e.Message}");
                }
                """);
        report.AppendLine("### Iot.Device.Bindings 4.2.0: a trimmed, self-contained linux-x64 publish of a one-line program, with and without it (CpuTemperature, the binding an appliance monitor would use)");
        report.AppendLine();
        report.AppendLine("| program | publish size MB | trimming warnings | run here |");
        report.AppendLine("|---|---:|---:|---|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| without | {bare.Megabytes:0.0} | {bare.Warnings} | {bare.Output} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| with Iot.Device.Bindings | {bindings.Megabytes:0.0} | {bindings.Warnings} | {bindings.Output} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| difference | {bindings.Megabytes - bare.Megabytes:+0.0;-0.0} | | |");
        report.AppendLine(CultureInfo.InvariantCulture, $"/sys/class/thermal here: {(Directory.Exists("/sys/class/thermal") ? Directory.GetDirectories("/sys/class/thermal").Length + " entries" : "absent")}");
    }

    private (double Megabytes, string Warnings, string Output) Publish(string name, string references, string program)
    {
        var directory = Path.Combine(work, "iot-" + name);
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, name + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <InvariantGlobalization>true</InvariantGlobalization>
                <PublishTrimmed>true</PublishTrimmed>
                <SelfContained>true</SelfContained>
                <RuntimeIdentifier>linux-x64</RuntimeIdentifier>
                <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
              </PropertyGroup>
              <ItemGroup>{references}</ItemGroup>
            </Project>
            """);
        // Outside the repository's Directory.Build.props and central versions: a user's plain project.
        File.WriteAllText(Path.Combine(directory, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(directory, "Directory.Packages.props"), "<Project />");
        File.WriteAllText(Path.Combine(directory, "Program.cs"), program);
        var output = Path.Combine(directory, "out");
        var log = Machine.Run("dotnet", "publish", directory, "-c", "Release", "-o", output);
        var codes = log.Split('\n').Where(l => l.Contains(": warning IL", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("warning IL", StringComparison.Ordinal) + "warning ".Length)..].Split(':')[0]).Distinct().Order().ToList();
        var warnings = codes.Count == 0 ? "0" : $"{codes.Count} ({string.Join(", ", codes)})";
        var bytes = Directory.GetFiles(output, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".pdb", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length);
        var run = Machine.Run(Path.Combine(output, name)).Trim().Replace('\n', ' ');
        return (bytes / 1024.0 / 1024.0, warnings, run);
    }
}
