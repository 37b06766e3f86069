using System.Diagnostics;
using System.Globalization;
using AppHb.Benchmarks;
using AppHb.Testing;

// apphb-bench heartbeat [--clients 1000,10000] [--seconds 5]
// Runs as root on Linux. Publishes apphbd as it ships (NativeAOT) and installs Debian's heartbeat
// package for the peer if it is missing.
if (args.Length == 0 || args[0] is not ("heartbeat" or "respawn" or "scrape" or "packages" or "hostile" or "partition" or "failover" or "replication-crash" or "replication" or "replication-resync"))
{
    Console.Error.WriteLine("usage: apphb-bench heartbeat [--clients 1000,10000] [--seconds 5]");
    Console.Error.WriteLine("       apphb-bench respawn [--kills 200] [--only floor,apphbd,runit,s6,daemontools,cl_respawn]");
    Console.Error.WriteLine("       apphb-bench scrape [--seconds 20]");
    Console.Error.WriteLine("       apphb-bench packages");
    Console.Error.WriteLine("       apphb-bench hostile [--floods 20] [--hold 30] [--seconds 180] [--rate 2000 fuzzed frames/s, 0: unpaced]");
    Console.Error.WriteLine("       apphb-bench partition [--trials 1000] [--seed N]");
    Console.Error.WriteLine("       apphb-bench failover [--trials 20] [--only failover,faults,switchover,cost]");
    Console.Error.WriteLine("       apphb-bench replication-crash [--trials 100] [--loss-trials 20] [--seed N] [--only sync,async,lsyncd]");
    Console.Error.WriteLine("       apphb-bench replication [--seconds 20] [--only recovery,barrier,lsyncd]");
    Console.Error.WriteLine("       apphb-bench replication-resync [--seed N] [--only bulk|resync]");
    Console.Error.WriteLine("  every command: [--daemon PUBLISHED/apphbd] to use an apphbd already published instead of publishing one");
    Console.Error.WriteLine("  replication commands: [--standby-dir DIR] node 2's directory, replica state and journal under DIR (another filesystem: its own disk, or tmpfs)");
    return 2;
}

var clients = new[] { 1000, 10_000 };
var kills = 200;
int? trials = null;
var lossTrials = 20;
var seed = Random.Shared.Next();
double? seconds = null;
var floods = 20;
var hold = 30.0;
var rate = 2000;
string[]? only = null;
string? prebuilt = null;
string? standbyDirectory = null;
// Options come in pairs; anything else is refused by name before a run starts (a mistyped option once started an
// hour of trials with the defaults).
for (var i = 1; i < args.Length; i += 2)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || args[i] is not ("--clients" or "--kills" or "--trials" or "--loss-trials" or "--seed"
        or "--only" or "--daemon" or "--floods" or "--rate" or "--hold" or "--seconds" or "--standby-dir"))
    {
        Console.Error.WriteLine($"apphb-bench {args[0]}: unknown option '{args[i]}' (run apphb-bench alone for the usage)");
        return 2;
    }

    if (i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"apphb-bench {args[0]}: option '{args[i]}' needs a value");
        return 2;
    }

    if (args[i] == "--clients")
    {
        clients = args[i + 1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
    }
    else if (args[i] == "--kills")
    {
        kills = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--trials")
    {
        trials = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--loss-trials")
    {
        lossTrials = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--seed")
    {
        seed = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--only")
    {
        only = args[i + 1].Split(',');
    }
    else if (args[i] == "--daemon")
    {
        // An apphbd already published (dotnet publish src/AppHb.Daemon -r linux-x64 -o DIR): saves the publish.
        prebuilt = Path.GetFullPath(args[i + 1]);
    }
    else if (args[i] == "--floods")
    {
        floods = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--rate")
    {
        rate = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--hold")
    {
        hold = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--seconds")
    {
        seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--standby-dir")
    {
        // Node 2's replicated directory, replica state and journal on another filesystem than node 1's (a pair of
        // appliances has a disk each; this machine one, whose syncs both nodes otherwise share).
        standbyDirectory = Directory.CreateDirectory(Path.Combine(Path.GetFullPath(args[i + 1]), FormattableString.Invariant($"apphb-standby-{Environment.ProcessId}"))).FullName;
        Environment.SetEnvironmentVariable(ReplicationCrashTrials.StandbyDirectoryVariable, standbyDirectory);
    }
}

var root = AppContext.BaseDirectory;
while (!File.Exists(Path.Combine(root, "AppHb.sln")))
{
    root = Path.GetDirectoryName(root.TrimEnd('/')) ?? throw new DirectoryNotFoundException("AppHb.sln");
}

if (!File.Exists(LinuxHaDaemon.Binary) || (args[0] == "respawn" && !(File.Exists("/usr/bin/runsv") && File.Exists("/usr/bin/s6-supervise") && File.Exists("/usr/bin/supervise")))
    || (args[0] == "failover" && !File.Exists("/usr/sbin/keepalived"))
    || (args[0] is "replication" or "replication-resync" && !(File.Exists("/usr/bin/lsyncd") && File.Exists("/usr/bin/rsync"))))
{
    Console.Error.WriteLine("installing the peers: apt-get install heartbeat keepalived runit s6 daemontools lsyncd rsync");
    Machine.Run("sh", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q heartbeat keepalived runit s6 daemontools lsyncd rsync >/dev/null");
}

var work = Directory.CreateTempSubdirectory("apphb-bench-").FullName;
var published = Path.Combine(work, "apphbd");
if (prebuilt is null)
{
    Console.Error.WriteLine("publishing apphbd as it ships (NativeAOT)...");
    Machine.Run("dotnet", "publish", Path.Combine(root, "src", "AppHb.Daemon"), "-c", "Release", "-r", "linux-x64", "-o", published);
}
else
{
    published = Path.GetDirectoryName(prebuilt)!;
}

var started = Stopwatch.StartNew();
var report = args[0] switch
{
    "respawn" => await new RespawnBenchmark(Path.Combine(published, "apphbd"), work, kills, only).RunAsync(),
    "scrape" => await new ScrapeBenchmark(Path.Combine(published, "apphbd"), work, Math.Max(seconds ?? 20, 34)).RunAsync(),
    "hostile" => await new HostileBenchmark(Path.Combine(published, "apphbd"), floods, TimeSpan.FromSeconds(hold), TimeSpan.FromSeconds(seconds ?? 180), rate).RunAsync(),
    "partition" => await new PartitionBenchmark(Path.Combine(published, "apphbd"), trials ?? 1000, seed).RunAsync(),
    "replication" => await new ReplicationBenchmark(Path.Combine(published, "apphbd"), seconds ?? 20, only).RunAsync(),
    "replication-resync" => await new ReplicationResyncBenchmark(Path.Combine(published, "apphbd"), seed, only?.Contains("bulk") == true, only?.Contains("resync") == true).RunAsync(),
    "replication-crash" => await new ReplicationCrashBenchmark(Path.Combine(published, "apphbd"), trials ?? 100, seed, lossTrials, only).RunAsync(),
    "failover" => await new FailoverBenchmark(Path.Combine(published, "apphbd"), trials ?? 20, only).RunAsync(),
    "packages" => await new PackagesBenchmark(Path.Combine(published, "apphbd"), work).RunAsync(),
    _ => await new HeartbeatBenchmark(Path.Combine(published, "apphbd"), work, clients, seconds ?? 5).RunAsync(),
};
Console.WriteLine($"{args[0] switch { "respawn" => "Supervisors", "scrape" => "Monitoring endpoints (/metrics and SNMP)", "packages" => "The project card's packages against AppHb's own code", "hostile" => "apphbd under hostile and careless clients", "partition" => "The pair under random faults (the randomized partition checker)", "failover" => "The pair against keepalived and heartbeat", "replication-crash" => "Replication: the active node crashed mid-load", "replication" => "Replication: recovery point against lsyncd + rsync", "replication-resync" => "Replication: difference resync and bulk throughput against rsync", _ => "Heartbeat daemons" }}, one run on {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {started.Elapsed.TotalSeconds:0} s:");
Console.WriteLine();
Console.Write(report);
Directory.Delete(work, recursive: true);
if (standbyDirectory is not null)
{
    Directory.Delete(standbyDirectory, recursive: true);
}

return 0;
