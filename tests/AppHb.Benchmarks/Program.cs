using System.Diagnostics;
using System.Globalization;
using AppHb.Benchmarks;

// apphb-bench heartbeat [--clients 1000,10000] [--seconds 5]
// Runs as root on Linux. Publishes apphbd as it ships (self-contained, ReadyToRun, trimmed) and installs Debian's heartbeat
// package for the peer if it is missing.
if (args.Length == 0 || args[0] is not ("heartbeat" or "respawn" or "scrape" or "packages"))
{
    Console.Error.WriteLine("usage: apphb-bench heartbeat [--clients 1000,10000] [--seconds 5]");
    Console.Error.WriteLine("       apphb-bench respawn [--kills 200] [--only floor,apphbd,runit,s6,daemontools,cl_respawn]");
    Console.Error.WriteLine("       apphb-bench scrape [--seconds 20]");
    Console.Error.WriteLine("       apphb-bench packages");
    return 2;
}

var clients = new[] { 1000, 10_000 };
var kills = 200;
var seconds = 5.0;
string[]? only = null;
for (var i = 1; i < args.Length - 1; i++)
{
    if (args[i] == "--clients")
    {
        clients = args[i + 1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
    }
    else if (args[i] == "--kills")
    {
        kills = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--only")
    {
        only = args[i + 1].Split(',');
    }
    else if (args[i] == "--seconds")
    {
        seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
    }
}

var root = AppContext.BaseDirectory;
while (!File.Exists(Path.Combine(root, "AppHb.sln")))
{
    root = Path.GetDirectoryName(root.TrimEnd('/')) ?? throw new DirectoryNotFoundException("AppHb.sln");
}

if (!File.Exists(LinuxHaDaemon.Binary) || (args[0] == "respawn" && !(File.Exists("/usr/bin/runsv") && File.Exists("/usr/bin/s6-supervise") && File.Exists("/usr/bin/supervise"))))
{
    Console.Error.WriteLine("installing the peers: apt-get install heartbeat runit s6 daemontools");
    Machine.Run("sh", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q heartbeat runit s6 daemontools >/dev/null");
}

var work = Directory.CreateTempSubdirectory("apphb-bench-").FullName;
var published = Path.Combine(work, "apphbd");
Console.Error.WriteLine("publishing apphbd as it ships (self-contained, ReadyToRun, trimmed)...");
Machine.Run("dotnet", "publish", Path.Combine(root, "src", "AppHb.Daemon"), "-c", "Release", "-r", "linux-x64", "-o", published);

var started = Stopwatch.StartNew();
var report = args[0] switch
{
    "respawn" => await new RespawnBenchmark(Path.Combine(published, "apphbd"), work, kills, only).RunAsync(),
    "scrape" => await new ScrapeBenchmark(Path.Combine(published, "apphbd"), work, Math.Max(seconds, 34)).RunAsync(),
    "packages" => await new PackagesBenchmark(Path.Combine(published, "apphbd"), work).RunAsync(),
    _ => await new HeartbeatBenchmark(Path.Combine(published, "apphbd"), work, clients, seconds).RunAsync(),
};
Console.WriteLine($"{args[0] switch { "respawn" => "Supervisors", "scrape" => "Monitoring endpoints (/metrics and SNMP)", "packages" => "The project card's packages against AppHb's own code", _ => "Heartbeat daemons" }}, one run on {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {started.Elapsed.TotalSeconds:0} s:");
Console.WriteLine();
Console.Write(report);
Directory.Delete(work, recursive: true);
return 0;
