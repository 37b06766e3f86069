using System.CommandLine;
using AppHb.Core.Events;
using AppHb.Core.Heartbeats;
using AppHb.Daemon;
using AppHb.Daemon.Clients;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Demo;
using AppHb.Daemon.Events;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Services;
using AppHb.Daemon.Status;
using AppHb.Linux.Realtime;
using AppHb.Linux.Watchdog;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// Run socket continuations on the runtime's epoll thread instead of hopping to the thread pool (Kestrel's /metrics,
// AgentX; clients have a loop of their own): measured on the client path when it still used runtime sockets, the hop
// was a third of the CPU per frame (docs/benchmarks.md). Read once by System.Net.Sockets when it first polls, which is
// after this line.
Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

var configOption = new Option<string>("--config", "-c")
{
    Description = "Configuration file (apphbd.yaml(5))",
    DefaultValueFactory = _ => "/etc/apphb/apphbd.yaml",
};
var checkOption = new Option<bool>("--check-config") { Description = "Validate the configuration, print any errors, and exit" };
var demoOption = new Option<bool>("--demo")
{
    Description = "Run with the embedded defaults, the 'none' watchdog backend, a socket under /tmp, and two demo clients",
};
var printDefaultsOption = new Option<bool>("--print-default-config") { Description = "Print the default configuration, with comments, and exit" };
var root = new RootCommand("apphbd: the AppHb node daemon. Watches heartbeat clients and feeds the hardware watchdog while healthy.")
{
    configOption, checkOption, demoOption, printDefaultsOption,
};
root.SetAction(async (parse, cancellationToken) =>
{
    if (parse.GetValue(printDefaultsOption))
    {
        // The packaged /etc/apphb/apphbd.yaml is this text: one source for the defaults and their documentation.
        Console.Write(DefaultConfiguration.Yaml + Environment.NewLine);
        return 0;
    }

    var demo = parse.GetValue(demoOption);
    var configPath = parse.GetValue(configOption)!;
    ApphbdOptions options;
    try
    {
        options = demo ? DemoOptions() : ConfigurationLoader.LoadFile(configPath);
    }
    catch (ConfigurationException e)
    {
        await Console.Error.WriteLineAsync($"apphbd: invalid configuration ({e.Errors.Count} error(s)):");
        foreach (var error in e.Errors)
        {
            await Console.Error.WriteLineAsync("  " + error);
        }

        return 2;
    }

    if (parse.GetValue(checkOption))
    {
        Console.WriteLine($"{(demo ? "(demo defaults)" : configPath)}: configuration is valid");
        return 0;
    }

    return await RunDaemonAsync(options, demo ? "(embedded demo defaults)" : configPath, demo ? null : configPath, demo);
});
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });

static ApphbdOptions DemoOptions()
{
    // One supervised service too, to show in apphbctl status, restart with apphbctl, and watch respawn after a kill.
    var defaults = ConfigurationLoader.Load("""
        services:
          demo-ticker:
            command: [/bin/sh, -c, "while true; do echo tick; sleep 10; done"]
        """, "(demo)");
    return defaults with
    {
        Socket = defaults.Socket with { Path = "/tmp/apphb-demo/apphbd.sock" },
        Watchdog = new WatchdogOptions(new WatchdogSettings(WatchdogBackend.None, "/dev/null", TimeSpan.FromSeconds(5)), TimeSpan.FromSeconds(1)),
    };
}

static async Task<int> RunDaemonAsync(ApphbdOptions options, string source, string? configPath, bool demo)
{
    var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ApplicationName = "apphbd", DisableDefaults = true });
    var notifier = new AppHb.Daemon.Systemd.SystemdNotifier();
    if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 })
    {
        // Under systemd: journald reads the <N> priority prefix and adds its own timestamp.
        builder.Logging.AddSystemdConsole();
    }
    else
    {
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss.fff ";
        });
    }
    // Socket continuations run inline on the epoll thread (see Main): a log flood must drop lines, never block it.
    builder.Logging.AddConsole(console =>
    {
        console.QueueFullMode = Microsoft.Extensions.Logging.Console.ConsoleLoggerQueueFullMode.DropWrite;
        console.MaxQueueLength = 10_000;
    });
    builder.Logging.SetMinimumLevel(LogLevel.Information);
    builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
    // Services stop one after another, each within its stop timeout: the host waits for all of them.
    // A node of the pair first hands its group over (each group service's stop timeout, then deadtime) and tells its
    // peer it is leaving (at most deadtime).
    var stopBudget = options.Services.Aggregate(TimeSpan.FromSeconds(10), (sum, s) => sum + s.StopTimeout + TimeSpan.FromSeconds(1))
        + AppHb.Daemon.Cluster.ClusterHost.HandOverBound(options) + (options.Cluster?.Timings.DeadTime ?? TimeSpan.Zero);
    builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = stopBudget);
    builder.Services.AddSingleton(new ConfigurationSource(configPath));
    builder.Services.AddSingleton(options);
    builder.Services.AddSingleton(TimeProvider.System);
    builder.Services.AddSingleton(new EventStream(options.Events.History));
    builder.Services.AddSingleton(sp => new HeartbeatRegistry(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<EventStream>(), options.Clients.Max));
    builder.Services.AddSingleton<AppHb.Export.Metrics.CollectorRegistry>();
    builder.Services.AddSingleton<AppHb.Daemon.Export.ObservedMetrics>();
    builder.Services.AddSingleton<AppHb.Daemon.Export.StatusMetrics>();
    builder.Services.AddSingleton<AppHb.Daemon.Export.MetricsServer>();
    builder.Services.AddSingleton(sp => new AppHb.Daemon.Export.StatusMib(sp.GetRequiredService<StatusReporter>().Build, options, sp.GetRequiredService<TimeProvider>()));
    builder.Services.AddSingleton<AppHb.Daemon.Export.SnmpAgent>();
    builder.Services.AddSingleton(sp => new DaemonHealth(sp.GetRequiredService<TimeProvider>())
    {
        TickleObserved = sp.GetRequiredService<AppHb.Daemon.Export.ObservedMetrics>().Tickle,
    });
    builder.Services.AddSingleton<StatusReporter>();
    builder.Services.AddSingleton<WatchdogTickler>();
    builder.Services.AddSingleton(sp => new DeadlineLoop(
        [sp.GetRequiredService<HeartbeatRegistry>(), sp.GetRequiredService<ServiceSupervisor>()],
        sp.GetRequiredService<DaemonHealth>(), sp.GetRequiredService<TimeProvider>(), options, sp.GetRequiredService<ILogger<DeadlineLoop>>()));
    builder.Services.AddSingleton<ClientSocketServer>();
    builder.Services.AddSingleton<EventBroadcaster>();
    // Two descriptors per client (socket, pidfd). Sockets come first: pidfds get half of what the limit leaves.
    var (openFiles, shortfall) = OpenFileLimit.Ensure((ulong)options.Clients.Max * 2 + 512);
    builder.Services.AddSingleton(sp => new AppHb.Linux.Processes.ChildProcessTable(sp.GetRequiredService<AppHb.Linux.Processes.ProcessExitWatcher>(), becomeSubreaper: true));
    builder.Services.AddSingleton<ServiceSupervisor>();
    builder.Services.AddSingleton<AppHb.Daemon.Clients.ControlHandler>();
    var exitWatcherCapacity = (int)Math.Min(int.MaxValue, (openFiles - Math.Min(openFiles, 512)) / 2);
    // Its thread respawns services (the supervisor acts in its callbacks): realtime, just below the broadcaster.
    builder.Services.AddSingleton(sp => new AppHb.Linux.Processes.ProcessExitWatcher(exitWatcherCapacity, () => RealtimeThreads.Apply(
        options.Realtime with { Priority = Math.Max(1, options.Realtime.Priority - 2) }, sp.GetRequiredService<ILoggerFactory>().CreateLogger("apphbd"), "exit watcher and respawn")));
    // Start order matters: log events first, own the watchdog, run the deadline loop, then accept clients.
    // The host stops in reverse, so the watchdog is disarmed last, after everything else stopped cleanly.
    builder.Services.AddSingleton<EventLogWriter>();
    builder.Services.AddHostedService(sp => sp.GetRequiredService<EventLogWriter>());
    builder.Services.AddHostedService(sp => sp.GetRequiredService<EventBroadcaster>());
    builder.Services.AddHostedService(sp => sp.GetRequiredService<WatchdogTickler>());
    builder.Services.AddHostedService(sp => sp.GetRequiredService<DeadlineLoop>());
    builder.Services.AddHostedService(sp => sp.GetRequiredService<ClientSocketServer>());
    // After the socket (services may connect to it at once), before READY=1: systemd hears READY when they run.
    builder.Services.AddHostedService(sp => sp.GetRequiredService<ServiceSupervisor>());
    builder.Services.AddSingleton<AppHb.Daemon.Cluster.ClusterHost>();
    builder.Services.AddSingleton<AppHb.Daemon.Cluster.ReplicationHost>();
    if (options.Replication is not null)
    {
        // Before the pair, stopped after it: the pair's orderly-stop hand-over drains replication first. It follows
        // the pair's roles from when the pair opens.
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AppHb.Daemon.Cluster.ReplicationHost>());
    }

    if (options.Cluster is not null)
    {
        // After the supervisor (the pair's group exists, inactive), stopped before it.
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AppHb.Daemon.Cluster.ClusterHost>());
    }

    if (options.Metrics.Listen is not null)
    {
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AppHb.Daemon.Export.MetricsServer>());
    }

    if (options.Snmp.AgentX is not null)
    {
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AppHb.Daemon.Export.SnmpAgent>());
    }
    builder.Services.AddSingleton(notifier);
    builder.Services.AddSingleton<AppHb.Daemon.Systemd.SystemdWatchdogFeeder>();
    builder.Services.AddHostedService(sp => sp.GetRequiredService<AppHb.Daemon.Systemd.SystemdWatchdogFeeder>());
    if (demo)
    {
        builder.Services.AddHostedService<DemoClients>();
    }

    using var host = builder.Build();
    var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("apphbd");
    Log.Starting(logger, StatusReporter.Version, Environment.ProcessId, source);
    var health = host.Services.GetRequiredService<DaemonHealth>();
    if (shortfall is not null)
    {
        Log.OpenFileLimitLow(logger, shortfall);
    }


    if (!options.Realtime.Enabled)
    {
        Log.RealtimeDisabled(logger);
    }
    else if (options.Realtime.LockMemory)
    {
        var locked = RealtimeScheduling.LockMemory();
        health.MemoryLocked = locked.Applied;
        if (locked.Applied)
        {
            Log.RealtimeApplied(logger, locked.Description);
        }
        else
        {
            Log.RealtimeRefused(logger, locked.Description);
        }
    }

    // Replication blocks pool threads in synchronous I/O (the journal's fdatasync, a cut's syncfs, reads under
    // writeback), and beyond its minimum (one thread per core) the pool adds threads only about twice a second: on 2
    // cores the pair's loop, which runs on the pool, once waited a second behind two such threads during a bulk copy
    // and its peer fenced it (replication-resync benchmark, 2026-12-02). Threads up to this minimum start at once.
    ThreadPool.GetMinThreads(out var poolWorkers, out var poolCompletions);
    ThreadPool.SetMinThreads(Math.Max(poolWorkers, 16), poolCompletions);

    // SIGHUP reloads the services, as systemctl reload (ExecReload=kill -HUP $MAINPID) and apphbctl reload do.
    // Registered before the host starts: READY=1 goes out while it starts, and a reload sent right after it must not
    // meet the runtime's default for SIGHUP (the process ends). One that comes before the start has ended waits for it.
    var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    var supervisor = host.Services.GetRequiredService<ServiceSupervisor>();
    var systemd = host.Services.GetRequiredService<AppHb.Daemon.Systemd.SystemdNotifier>();
    // Inherited "ignore" (nohup, a shell script that trapped HUP) would make the runtime skip the handler below.
    AppHb.Linux.Processes.SignalDisposition.Default(AppHb.Core.Supervision.SignalNames.SIGHUP);
    using var hangup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, context =>
    {
        context.Cancel = true;
        _ = Task.Run(async () =>
        {
            await started.Task;
            systemd.Notify(AppHb.Daemon.Systemd.ServiceState.Reloading(System.Diagnostics.Stopwatch.GetTimestamp() / (System.Diagnostics.Stopwatch.Frequency / 1_000_000)));
            try
            {
                await supervisor.ReloadAsync(CancellationToken.None);
            }
            catch (ConfigurationException e)
            {
                Log.ReloadWarning(logger, "refused, nothing changed: " + string.Join("; ", e.Errors));
            }
#pragma warning disable CA1031 // Whatever failed, the manager must not be left believing apphbd is still reloading.
            catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
            {
                Log.ReloadWarning(logger, $"failed ({e.GetType().Name}): {e.Message}");
            }

            systemd.Notify(AppHb.Daemon.Systemd.ServiceState.Ready);
        });
    });
    try
    {
        await host.StartAsync();
    }
    catch (Exception e) when (e is WatchdogUnavailableException or IOException or InvalidOperationException or System.Net.Sockets.SocketException
        or UnauthorizedAccessException)
    {
        await Console.Error.WriteLineAsync($"apphbd: cannot start: {e.Message}");
        // Services that did start (threads, the watchdog) stop in order; a half-started daemon must not just vanish.
        try
        {
            await host.StopAsync();
        }
        catch (ArgumentNullException)
        {
            // The host failed before it had a list of started services (found when a hosted service's constructor
            // threw): there is nothing to stop in order, and the exit code already says why.
        }

        return 1;
    }

    host.Services.GetRequiredService<StatusReporter>().Warmup();
    var tickler = host.Services.GetRequiredService<WatchdogTickler>();
    Log.Ready(logger, options.Socket.Path, tickler.Device?.Backend ?? "none");
    started.TrySetResult();
    await host.WaitForShutdownAsync();
    Log.Stopping(logger);
    return 0;
}
