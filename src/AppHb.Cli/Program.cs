using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using AppHb.Cli;
using AppHb.Client;
using AppHb.Protocol;

var socketOption = new Option<string>("--socket", "-s")
{
    Description = "apphbd's socket ($APPHB_SOCKET, else /run/apphb/apphbd.sock)",
    DefaultValueFactory = _ => HeartbeatClientOptions.DefaultSocketPath,
    Recursive = true,
};
var jsonOption = new Option<bool>("--json") { Description = "Print JSON instead of text" };

var statusNameArgument = new Argument<string?>("name") { Description = "A service: show only it", Arity = ArgumentArity.ZeroOrOne };
var status = new Command("status", "Show the daemon, its watchdog, its services and every client; or one service") { jsonOption, statusNameArgument };
status.SetAction(async (parse, ct) => await Run(async () =>
{
    var document = await new AppHbControl(parse.GetValue(socketOption)).GetStatusAsync(ct);
    if (parse.GetValue(statusNameArgument) is { } name)
    {
        var service = document.Services.FirstOrDefault(s => s.Name == name)
            ?? throw new AppHbException(ErrorCode.UnknownService, $"no service named \"{name}\"; configured: {string.Join(", ", document.Services.Select(s => s.Name))}");
        Console.Write(parse.GetValue(jsonOption)
            ? JsonSerializer.Serialize(service, ProtocolJsonContext.Default.ServiceStatus) + Environment.NewLine
            : StatusPrinter.RenderService(service));
        return;
    }

    Console.Write(parse.GetValue(jsonOption)
        ? JsonSerializer.Serialize(document, ProtocolJsonContext.Default.StatusDocument) + Environment.NewLine
        : StatusPrinter.Render(document));
}));

Command ServiceCommand(string verb, string description, ControlAction action)
{
    var serviceArgument = new Argument<string>("name") { Description = "The service, as named in apphbd.yaml" };
    var command = new Command(verb, description) { serviceArgument };
    command.SetAction(async (parse, ct) => await Run(async () =>
    {
        var result = await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(action, parse.GetValue(serviceArgument)!, 0, ct);
        Console.WriteLine(result.Message);
    }));
    return command;
}

var linesOption = new Option<int>("--lines", "-n") { Description = "How many lines", DefaultValueFactory = _ => 50 };
var logsArgument = new Argument<string>("name") { Description = "The service" };
var logs = new Command("logs", "Print a service's recent output (all of it is in the journal)") { logsArgument, linesOption };
logs.SetAction(async (parse, ct) => await Run(async () =>
{
    var result = await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(ControlAction.Logs, parse.GetValue(logsArgument)!, Math.Max(1, parse.GetValue(linesOption)), ct);
    await Console.Error.WriteLineAsync(result.Message);
    foreach (var line in result.Lines)
    {
        Console.WriteLine(line);
    }
}));

var reload = new Command("reload", "Re-read apphbd.yaml and apply the services' changes (unchanged services keep running)");
reload.SetAction(async (parse, ct) => await Run(async () =>
{
    var result = await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(ControlAction.Reload, string.Empty, 0, ct);
    Console.WriteLine("reloaded: " + result.Message);
    foreach (var line in result.Lines)
    {
        Console.WriteLine("  " + line);
    }
}));

var followOption = new Option<bool>("--follow", "-f") { Description = "Keep printing events as they happen" };
var eventsJsonOption = new Option<bool>("--json") { Description = "One JSON document per line" };
var events = new Command("events", "Print the daemon's recent events; with --follow, then live ones") { followOption, eventsJsonOption };
events.SetAction(async (parse, ct) => await Run(async () =>
{
    var follow = parse.GetValue(followOption);
    var json = parse.GetValue(eventsJsonOption);
    using var quiet = new CancellationTokenSource();
    using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, quiet.Token);
    if (!follow)
    {
        // Without --follow: the history, then stop once the daemon has been quiet briefly.
        quiet.CancelAfter(TimeSpan.FromMilliseconds(300));
    }

    try
    {
        await foreach (var e in new AppHbControl(parse.GetValue(socketOption)).WatchEventsAsync(includeHistory: true, linked.Token))
        {
            Console.WriteLine(json
                ? JsonSerializer.Serialize(e, ProtocolJsonContext.Default.EventDocument)
                : $"{e.At.ToLocalTime():yyyy-MM-dd HH:mm:ss.fff} {e.Kind,-12} {e.Message}");
            if (!follow)
            {
                quiet.CancelAfter(TimeSpan.FromMilliseconds(300));
            }
        }
    }
    catch (OperationCanceledException) when (quiet.IsCancellationRequested || ct.IsCancellationRequested)
    {
    }
}));

var nameArgument = new Argument<string>("name") { Description = "Application name to register" };
var instanceOption = new Option<string>("--instance") { Description = "Instance, to tell several apart", DefaultValueFactory = _ => string.Empty };
var intervalOption = new Option<string>("--interval") { Description = "Hung after this long without a beat", DefaultValueFactory = _ => "10s" };
var warnOption = new Option<string>("--warn") { Description = "Warn after this long without a beat (0s: never)", DefaultValueFactory = _ => "5s" };
var periodOption = new Option<string?>("--period") { Description = "Beat on this period (default: a third of the interval)" };
var stdinOption = new Option<bool>("--stdin") { Description = "Beat once per line read from standard input (per call); unregister at end of input" };
var hb = new Command("hb", "Register NAME and heartbeat for a shell script: on a period, or once per input line")
{
    nameArgument, instanceOption, intervalOption, warnOption, periodOption, stdinOption,
};
hb.SetAction(async (parse, ct) => await Run(async () =>
{
    var interval = ParseDuration(parse.GetValue(intervalOption)!, "--interval");
    var warn = ParseDuration(parse.GetValue(warnOption)!, "--warn");
    var period = parse.GetValue(periodOption) is { } p ? ParseDuration(p, "--period") : interval / 3;
    await using var client = new HeartbeatClient(new HeartbeatClientOptions
    {
        SocketPath = parse.GetValue(socketOption)!,
        Name = parse.GetValue(nameArgument)!,
        Instance = parse.GetValue(instanceOption)!,
        Interval = interval,
        WarnTime = warn,
    });
    await client.RegisterAsync(ct);
    var registration = client.Registration!;
    await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
        $"apphbctl: registered {parse.GetValue(nameArgument)} as client {registration.ClientId} (pid {registration.Pid})"));
    try
    {
        if (parse.GetValue(stdinOption))
        {
            while (await Console.In.ReadLineAsync(ct) is not null)
            {
                await client.BeatAsync(ct);
            }
        }
        else
        {
            using var timer = new PeriodicTimer(period);
            await client.BeatAsync(ct);
            while (await timer.WaitForNextTickAsync(ct))
            {
                await client.BeatAsync(ct);
            }
        }
    }
    catch (OperationCanceledException)
    {
    }

    await client.UnregisterAsync(CancellationToken.None);
}));

var clusterJsonOption = new Option<bool>("--json") { Description = "Print JSON instead of text" };
var cluster = new Command("cluster", "Show the pair: roles, data generations, each link's state and last-heard age, ping targets, last fence")
{
    clusterJsonOption,
};
cluster.SetAction(async (parse, ct) => await Run(async () =>
{
    var document = await new AppHbControl(parse.GetValue(socketOption)).GetStatusAsync(ct);
    var pair = document.Cluster ?? throw new AppHbException(ErrorCode.Failed, "this node is not part of a pair: apphbd.yaml has no cluster section");
    Console.Write(parse.GetValue(clusterJsonOption)
        ? JsonSerializer.Serialize(pair, ProtocolJsonContext.Default.ClusterStatus) + Environment.NewLine
        : StatusPrinter.RenderCluster(pair));
}));
var survivorOption = new Option<string>("--survivor") { Description = "The node whose data lives on", Required = true };
var resolve = new Command("resolve", "After a split brain: the node whose data survives (the other takes its generations; nothing is deleted)")
{
    survivorOption,
};
resolve.SetAction(async (parse, ct) => await Run(async () =>
    Console.WriteLine((await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(ControlAction.Resolve, parse.GetValue(survivorOption)!, 0, ct)).Message)));
cluster.Subcommands.Add(resolve);

var replicationJsonOption = new Option<bool>("--json") { Description = "Print JSON instead of text" };
var replicationStatus = new Command("status", "Show this node's side of replication: journal, confirmed, applied, resyncs, the last connection's end")
{
    replicationJsonOption,
};
replicationStatus.SetAction(async (parse, ct) => await Run(async () =>
{
    var document = await new AppHbControl(parse.GetValue(socketOption)).GetStatusAsync(ct);
    var replicating = document.Replication ?? throw new AppHbException(ErrorCode.Failed, "this node replicates nothing: apphbd.yaml has no replication section");
    Console.Write(parse.GetValue(replicationJsonOption)
        ? JsonSerializer.Serialize(replicating, ProtocolJsonContext.Default.ReplicationStatus) + Environment.NewLine
        : StatusPrinter.RenderReplication(replicating));
}));
var appliedOption = new Option<bool>("--applied") { Description = "Also wait until the peer has applied those changes, visible in its replica (not only durable there)" };
var replicationSync = new Command("sync", "On the active node: return once every change made in the replicated directory before it is durable on the peer (fails after replication.barrier-timeout)")
{
    appliedOption,
};
replicationSync.SetAction(async (parse, ct) => await Run(async () =>
    Console.WriteLine((await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(ControlAction.ReplicationSync, parse.GetValue(appliedOption) ? ControlRequest.SyncApplied : string.Empty, 0, ct)).Message)));
var repairOption = new Option<bool>("--repair") { Description = "Resync a replica found to differ (only what differs is sent), then verify again" };
var replicationVerify = new Command("verify", "On the active node: compare the replica with the replicated directory by block hashes and list the differences (exit 1 when any)")
{
    repairOption,
};
replicationVerify.SetAction(async (parse, ct) => await RunForCode(async () =>
{
    var result = await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(
        parse.GetValue(repairOption) ? ControlAction.ReplicationRepair : ControlAction.ReplicationVerify, string.Empty, 0, ct);
    Console.WriteLine(result.Message);
    foreach (var line in result.Lines)
    {
        Console.WriteLine("  " + line);
    }

    // Differences found and not repaired are a failure a script must see (the message's first word is the verdict).
    return result.Message.StartsWith("differs:", StringComparison.Ordinal) ? 1 : 0;
}));
var replication = new Command("replication", "Replication of the group's data to the standby") { replicationStatus, replicationSync, replicationVerify };

Command PairCommand(string verb, string description, ControlAction action)
{
    var command = new Command(verb, description);
    command.SetAction(async (parse, ct) => await Run(async () =>
        Console.WriteLine((await new AppHbControl(parse.GetValue(socketOption)).ControlAsync(action, string.Empty, 0, ct)).Message)));
    return command;
}

var root = new RootCommand("apphbctl: inspect and drive apphbd")
{
    socketOption, status, events, hb,
    ServiceCommand("start", "Start a service (and forget its restart history)", ControlAction.Start),
    ServiceCommand("stop", "Stop a service (and what requires it); it stays stopped until started", ControlAction.Stop),
    ServiceCommand("restart", "Restart a service; what requires it restarts after it", ControlAction.Restart),
    logs, reload, cluster, replication,
    PairCommand("switchover", "Move the pair's group to the other node (refused when it cannot take it); returns when it runs there", ControlAction.Switchover),
    PairCommand("failback", "Return the pair's group to the preferred node, once its data has caught up", ControlAction.Failback),
    PairCommand("standby", "Keep this node from becoming active (the group is handed over first if it runs here)", ControlAction.Standby),
    PairCommand("unstandby", "Let this node become active again", ControlAction.Unstandby),
};
return await root.Parse(args).InvokeAsync();

static TimeSpan ParseDuration(string text, string option) => Durations.TryParse(text, out var value)
    ? value
    : throw new UsageException($"{option}: \"{text}\" is not a duration; use a number with ms, s, m or h (e.g. 500ms, 10s)");

static Task<int> Run(Func<Task> action) => RunForCode(async () =>
{
    await action();
    return 0;
});

static async Task<int> RunForCode(Func<Task<int>> action)
{
    try
    {
        return await action();
    }
    catch (UsageException e)
    {
        await Console.Error.WriteLineAsync($"apphbctl: {e.Message}");
        return 2;
    }
    catch (AppHbException e)
    {
        await Console.Error.WriteLineAsync($"apphbctl: {e.Message}");
        return 1;
    }
}

/// <summary>A command-line value is wrong; exit 2 like other usage errors.</summary>
internal sealed class UsageException(string message) : Exception(message);
