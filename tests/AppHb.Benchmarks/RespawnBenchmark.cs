using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace AppHb.Benchmarks;

/// <summary>Crash-to-respawn latency: SIGKILL of a supervised child to its replacement's first timestamp, for apphbd
/// and the supervisors people pick instead, in one run, all supervising the same native child (native/stamp.c) exec'd
/// directly from each service directory. Plus each supervisor's RSS and idle CPU with 50 services.</summary>
internal sealed class RespawnBenchmark(string apphbd, string work, int kills, IReadOnlyList<string>? only = null)
{
    private const int Services = 10;
    private const int IdleServices = 50;
    private static readonly TimeSpan Spacing = TimeSpan.FromMilliseconds(115);
    private static readonly TimeSpan RapidBound = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, (int Pid, long At)> _latest = new();
    private readonly SemaphoreSlim _stamped = new(0);

    public async Task<string> RunAsync()
    {
        var stamp = Path.Combine(work, "stamp");
        Machine.Run("cc", "-O2", "-Wall", "-o", stamp, Path.Combine(AppContext.BaseDirectory, "native", "stamp.c"));
        var floor = Path.Combine(work, "floor");
        Machine.Run("cc", "-O2", "-Wall", "-o", floor, Path.Combine(AppContext.BaseDirectory, "native", "floor.c"));
        var socketPath = Path.Combine(work, "stamp.sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        using var stop = new CancellationTokenSource();
        var receiver = Task.Run(() => Receive(socket, stop.Token));
        Environment.SetEnvironmentVariable("STAMP_SOCKET", socketPath);

        var supervisors = new List<ISupervisorUnderTest>
        {
            // First: this machine's fork/exec/waitpid today, which every other figure is read against.
            new FloorSupervisor(floor),
            new ApphbdSupervisor(apphbd),
            // The same apphbd without realtime threads, for what the policy costs or buys (only with --only).
            new ApphbdSupervisor(apphbd, realtime: false),
            new ScanDirSupervisor("runit runsv", "runsvdir", "runsv"),
            new ScanDirSupervisor("s6-supervise", "s6-svscan", "s6-supervise"),
            new ScanDirSupervisor("daemontools supervise", "svscan", "supervise"),
            new ClRespawnSupervisor(),
        };

        // --only: a quick look at some of them (the latest run in the docs is always the full set).
        supervisors = only is null
            ? supervisors.Where(s => !s.Name.Contains("realtime off", StringComparison.Ordinal)).ToList()
            : supervisors.Where(s => only.Any(o => s.Name.Contains(o, StringComparison.OrdinalIgnoreCase))).ToList();

        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Crash-to-respawn latency (SIGKILL of the child -> the new child's first timestamp), {Services} services per supervisor:");
        table.AppendLine(CultureInfo.InvariantCulture, $"spaced: one kill every {Spacing.TotalMilliseconds:0} ms round-robin, so each child has run > 1 s (past every peer's restart throttle);");
        table.AppendLine(CultureInfo.InvariantCulture, $"rapid: the next kill as soon as the previous replacement reported (capped at {RapidBound.TotalSeconds:0} s per supervisor).");
        table.AppendLine();
        table.AppendLine("| supervisor | mode | kills | p50 ms | p95 ms | p99 ms | max ms | p50 vs apphbd | p50 vs the floor |");
        table.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        var idle = new StringBuilder();
        idle.AppendLine(CultureInfo.InvariantCulture, $"Footprint with {IdleServices} idle services (all supervisor processes; CPU over 30 s idle, in 10 ms ticks: 0.000 means under 0.033 %):");
        idle.AppendLine();
        idle.AppendLine("| supervisor | processes | RSS MB (summed) | PSS MB | idle CPU % of a core | PSS vs apphbd |");
        idle.AppendLine("|---|---:|---:|---:|---:|---:|");
        var ours = new Dictionary<string, double>();
        var floors = new Dictionary<string, double>();
        double? ourRss = null;
        foreach (var supervisor in supervisors)
        {
            Console.Error.WriteLine($"respawn: {supervisor.Name}...");
            foreach (var (mode, rapid) in new[] { ("spaced", false), ("rapid", true) })
            {
                var directory = Prepare(Path.Combine(work, $"{Slug(supervisor.Name)}-{mode}"), stamp, Services);
                await using (var running = await supervisor.StartAsync(directory, work))
                {
                    await WaitForAllAsync(directory, Services, TimeSpan.FromSeconds(20));
                    if (!rapid)
                    {
                        // Every child must have run past the one-second throttles before the first kill.
                        await Task.Delay(1200);
                    }

                    var latencies = await KillLoopAsync(directory, Services, rapid);
                    latencies.Sort();
                    var p50 = Percentiles.NearestRank(latencies, 0.50);
                    if (supervisor.Name == "apphbd")
                    {
                        ours[mode] = p50;
                    }
                    else if (supervisor is FloorSupervisor)
                    {
                        floors[mode] = p50;
                    }

                    var ratio = ours.TryGetValue(mode, out var ourP50) && ourP50 > 0 ? $"{p50 / ourP50:0.00}x" : "-";
                    var overFloor = floors.TryGetValue(mode, out var floorP50) && floorP50 > 0 ? $"{p50 / floorP50:0.00}x" : "-";
                    table.AppendLine(CultureInfo.InvariantCulture,
                        $"| {supervisor.Name} | {mode} | {latencies.Count} | {p50:0.000} | {Percentiles.NearestRank(latencies, 0.95):0.000} | {Percentiles.NearestRank(latencies, 0.99):0.000} | {(latencies.Count > 0 ? latencies[^1] : double.NaN):0.000} | {ratio} | {overFloor} |");
                }
            }

            if (supervisor is FloorSupervisor)
            {
                // A floor for latency only: its footprint says nothing about a supervisor one would deploy.
                continue;
            }

            var idleDirectory = Prepare(Path.Combine(work, $"{Slug(supervisor.Name)}-idle"), stamp, IdleServices);
            await using (var running = await supervisor.StartAsync(idleDirectory, work))
            {
                await WaitForAllAsync(idleDirectory, IdleServices, TimeSpan.FromSeconds(30));
                await Task.Delay(2000);
                var pids = running.SupervisorPids();
                var rss = pids.Sum(Machine.ResidentMegabytes);
                var pss = pids.Sum(Machine.ProportionalMegabytes);
                var cpuBefore = pids.Sum(p => Machine.CpuTime(p).TotalSeconds);
                var watch = Stopwatch.StartNew();
                await Task.Delay(30_000);
                var cpu = (pids.Sum(p => Machine.CpuTime(p).TotalSeconds) - cpuBefore) / watch.Elapsed.TotalSeconds * 100;
                if (supervisor.Name == "apphbd")
                {
                    ourRss = pss;
                }

                idle.AppendLine(CultureInfo.InvariantCulture, $"| {supervisor.Name} | {pids.Count} | {rss:0.0} | {pss:0.0} | {cpu:0.000} | {(ourRss is { } ours0 ? $"{pss / ours0:0.00}x" : "-")} |");
            }
        }

        await stop.CancelAsync();
        socket.Dispose();
        await receiver.ContinueWith(_ => { }, TaskScheduler.Default);
        return table + Environment.NewLine + idle;

        string Prepare(string directory, string binary, int count)
        {
            _latest.Clear();
            for (var i = 0; i < count; i++)
            {
                var service = Path.Combine(directory, $"svc{i:00}");
                Directory.CreateDirectory(service);
                File.Copy(binary, Path.Combine(service, "run"), overwrite: true);
            }

            return directory;
        }
    }

    private async Task<List<double>> KillLoopAsync(string directory, int count, bool rapid)
    {
        var latencies = new List<double>();
        var bound = Stopwatch.StartNew();
        for (var k = 0; k < kills && !(rapid && bound.Elapsed > RapidBound); k++)
        {
            var name = $"svc{k % count:00}";
            var (pid, _) = _latest[name];
            var killedAt = Stopwatch.GetTimestamp();
            _ = RunningProcesses.Kill(pid, 9);
            var deadline = Stopwatch.StartNew();
            while (_latest[name].Pid == pid && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                await _stamped.WaitAsync(TimeSpan.FromMilliseconds(100));
            }

            var (newPid, at) = _latest[name];
            if (newPid == pid)
            {
                throw new TimeoutException($"{name} was not respawned within 10 s");
            }

            latencies.Add((at - killedAt) * 1000.0 / Stopwatch.Frequency);
            if (!rapid)
            {
                var wait = Spacing - TimeSpan.FromTicks((Stopwatch.GetTimestamp() - killedAt) * TimeSpan.TicksPerSecond / Stopwatch.Frequency);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }
            }
        }

        return latencies;
    }

    private async Task WaitForAllAsync(string directory, int count, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (Enumerable.Range(0, count).Any(i => !_latest.ContainsKey($"svc{i:00}")))
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"only {_latest.Count} of {count} services of {directory} started");
            }

            await _stamped.WaitAsync(TimeSpan.FromMilliseconds(100));
        }
    }

    private void Receive(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[512];
        while (!cancellationToken.IsCancellationRequested)
        {
            int read;
            try
            {
                read = socket.Receive(buffer);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            var parts = Encoding.ASCII.GetString(buffer, 0, read).Split(' ');
            _latest[parts[0]] = (int.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
            _stamped.Release();
        }
    }

    private static string Slug(string name) => name.Replace(' ', '-');
}

internal interface ISupervisorUnderTest
{
    string Name { get; }

    Task<IRunningSupervisor> StartAsync(string directory, string work);
}

internal interface IRunningSupervisor : IAsyncDisposable
{
    /// <summary>The supervisor's own processes (not the children).</summary>
    List<int> SupervisorPids();
}

/// <summary>Processes started for one run, killed with their process group at the end.</summary>
internal sealed class RunningProcesses(List<Process> processes, Func<List<int>> pids, params string[] alsoKill) : IRunningSupervisor
{
    public List<int> SupervisorPids() => pids();

    public async ValueTask DisposeAsync()
    {
        foreach (var process in processes)
        {
            // Each runs in its own session (setsid): the group holds the supervisor and every child it started.
            _ = Kill(-process.Id, 9);
            await process.WaitForExitAsync();
            process.Dispose();
        }

        // Supervisors that put children in sessions of their own leave them behind: the children are all "run".
        foreach (var pid in ByName([.. alsoKill, "run"]))
        {
            _ = Kill(pid, 9);
        }

        await Task.Delay(300);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    internal static extern int Kill(int pid, int signal);

    public static Process StartInSession(string file, string workingDirectory, params string[] args) => StartNamedInSession(file, workingDirectory, null, args);

    public static Process StartNamedInSession(string file, string workingDirectory, string? stampName, params string[] args)
    {
        var info = new ProcessStartInfo("/usr/bin/setsid") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        if (stampName is not null)
        {
            info.Environment["STAMP_NAME"] = stampName;
        }

        info.ArgumentList.Add(file);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return process;
    }

    public static List<int> ByName(params string[] names) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => int.TryParse(n, out _)).Select(int.Parse!)
            .Where(pid =>
            {
                try
                {
                    return names.Contains(File.ReadAllText($"/proc/{pid}/comm").Trim());
                }
                catch (IOException)
                {
                    return false;
                }
            }).ToList();
}

/// <summary>apphbd as shipped, every service with the immediate policy (no backoff, no give-up).</summary>
internal sealed class ApphbdSupervisor(string binary, bool realtime = true) : ISupervisorUnderTest
{
    public string Name => realtime ? "apphbd" : "apphbd (realtime off)";

    public async Task<IRunningSupervisor> StartAsync(string directory, string work)
    {
        var services = new StringBuilder("services:\n");
        foreach (var service in Directory.GetDirectories(directory).Order(StringComparer.Ordinal))
        {
            services.Append(CultureInfo.InvariantCulture, $"""
                  {Path.GetFileName(service)}:
                    command: [{Path.Combine(service, "run")}]
                    directory: {service}
                    environment:
                      STAMP_SOCKET: {Environment.GetEnvironmentVariable("STAMP_SOCKET")}
                    restart:
                      backoff: 0s
                      max-restarts: 1000000
                      window: 1s

                """);
        }

        var config = Path.Combine(directory, "apphbd.yaml");
        await File.WriteAllTextAsync(config, $"""
            socket:
              path: {Path.Combine(directory, "apphbd.sock")}
            watchdog:
              backend: none
            realtime:
              enabled: {(realtime ? "true" : "false")}
            {services}
            """);
        var process = RunningProcesses.StartInSession(binary, directory, "--config", config);
        return new RunningProcesses([process], () => [process.Id]);
    }
}

/// <summary>The floor: a C loop of fork, exec and a blocking waitpid (native/floor.c), respawning at once.</summary>
internal sealed class FloorSupervisor(string binary) : ISupervisorUnderTest
{
    public string Name => "floor (C fork/exec/waitpid)";

    public Task<IRunningSupervisor> StartAsync(string directory, string work)
    {
        var services = Directory.GetDirectories(directory).Order(StringComparer.Ordinal).ToArray();
        var process = RunningProcesses.StartInSession(binary, directory, services);
        return Task.FromResult<IRunningSupervisor>(new RunningProcesses([process], () => [process.Id]));
    }
}

/// <summary>A scanner that runs one supervisor process per service directory: runit, s6, daemontools.</summary>
internal sealed class ScanDirSupervisor(string name, string scanner, string supervisor) : ISupervisorUnderTest
{
    public string Name => name;

    public Task<IRunningSupervisor> StartAsync(string directory, string work)
    {
        var process = RunningProcesses.StartInSession(scanner, directory, directory);
        return Task.FromResult<IRunningSupervisor>(new RunningProcesses([process], () => RunningProcesses.ByName(scanner, supervisor), supervisor));
    }
}

/// <summary>Heartbeat's cl_respawn: one per service.</summary>
internal sealed class ClRespawnSupervisor : ISupervisorUnderTest
{
    public string Name => "heartbeat cl_respawn";

    public Task<IRunningSupervisor> StartAsync(string directory, string work)
    {
        var processes = Directory.GetDirectories(directory).Order(StringComparer.Ordinal)
            // One pidfile each: without -p every instance shares cl_respawn's default and only the first runs.
            .Select(service => RunningProcesses.StartNamedInSession("/usr/bin/cl_respawn", service, Path.GetFileName(service),
                "-p", Path.Combine(service, "cl_respawn.pid"), Path.Combine(service, "run"))).ToList();
        return Task.FromResult<IRunningSupervisor>(new RunningProcesses(processes, () => RunningProcesses.ByName("cl_respawn"), "cl_respawn"));
    }
}
