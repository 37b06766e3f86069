using System.Collections.Concurrent;
using System.Diagnostics;

namespace AppHb.Testing;

/// <summary>A private net-snmp: snmpd as AgentX master with the packaged systemd/snmpd-apphb.conf, on a socket in a
/// temporary directory and a loopback UDP port (v2c community and an SNMPv3 authPriv user), and snmptrapd receiving
/// the traps snmpd sends, logged numerically.
/// The tools (snmpwalk, snmpget, snmpbulkwalk) read APPHB-MIB from the repository.</summary>
public sealed class NetSnmp : IAsyncDisposable
{
    public const string Community = "apphbtest";
    public const string User = "apphbv3";
    public const string AuthPassword = "apphb-auth-pass";
    public const string PrivPassword = "apphb-priv-pass";

    private readonly TempDirectory _directory = new();
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _snmpd;
    private Process? _snmptrapd;
    private Process? _subagent;
    private bool _hostResourcesBySubagent;

    private NetSnmp()
    {
        AgentXSocket = _directory.File("agentx.sock");
        AgentPort = LoopbackPorts.FreeUdp();
        TrapPort = LoopbackPorts.FreeUdp();
    }

    public string AgentXSocket { get; }

    /// <summary>What apphbd.yaml's snmp.agentx says to reach this snmpd: the socket path, or tcp:127.0.0.1:PORT.</summary>
    public string AgentX { get; private set; } = string.Empty;

    public int AgentPort { get; }

    /// <summary>The master's AgentX address in net-snmp's transport syntax (agentXSocket, snmpd -x).</summary>
    private string MasterAddress => AgentX == AgentXSocket ? "unix:" + AgentXSocket : AgentX;

    public int TrapPort { get; }

    /// <summary>Where the tools find APPHB-MIB and the SMIv2 base modules it imports.</summary>
    public static string MibDirectories { get; } =
        $"{Path.Combine(RepositoryPaths.Root, "tests", "mibs")}:{Path.Combine(RepositoryPaths.Root, "src", "AppHb.Export", "Snmp")}";

    public string Agent => $"udp:127.0.0.1:{AgentPort}";

    /// <summary>The running snmpd's pid (for the benchmarks' CPU accounting).</summary>
    public int SnmpdProcessId => _snmpd?.Id ?? throw new InvalidOperationException("snmpd is not running");

    public string SnmpdOutput => string.Join('\n', _output);

    /// <param name="fullView">The community sees all of snmpd (benchmarks walk snmpd's own tables beside ours).</param>
    /// <param name="tcp">The master listens for AgentX on a loopback TCP port instead of the Unix socket.</param>
    /// <param name="hostResourcesBySubagent">The benchmarks' like-for-like peer for apphbd's subagent: this snmpd leaves
    /// hrSWRunTable out (-I -hrSWRunTable) and a second snmpd, net-snmp's own AgentX subagent (snmpd -X), serves it
    /// through this one's AgentX socket.</param>
    public static async Task<NetSnmp> StartAsync(bool fullView = false, bool tcp = false, bool hostResourcesBySubagent = false)
    {
        var snmp = new NetSnmp { _hostResourcesBySubagent = hostResourcesBySubagent };
        snmp.AgentX = tcp ? $"tcp:127.0.0.1:{LoopbackPorts.Free()}" : snmp.AgentXSocket;
        Directory.CreateDirectory(snmp._directory.File("persist"));
        // The packaged snippet first, as Debian's snmpd.conf includes it; then this instance's socket and port. The
        // community and the user see only Debian's default view ("systemonly") and what the snippet adds to it.
        await File.WriteAllTextAsync(snmp._directory.File("snmpd.conf"), $"""
            includeFile {Path.Combine(RepositoryPaths.Root, "systemd", "snmpd-apphb.conf")}
            agentXSocket {snmp.MasterAddress}
            agentaddress udp:127.0.0.1:{snmp.AgentPort}
            view systemonly included .1.3.6.1.2.1.1
            rocommunity {Community} 127.0.0.1{(fullView ? string.Empty : " -V systemonly")}
            createUser {User} SHA "{AuthPassword}" AES "{PrivPassword}"
            rouser {User} priv -V systemonly
            trap2sink 127.0.0.1:{snmp.TrapPort} {Community}
            """);
        await File.WriteAllTextAsync(snmp._directory.File("snmptrapd.conf"), $"authCommunity log {Community}\n");
        snmp._snmptrapd = Start("snmptrapd", snmp._output, "-f", "-Lf", snmp._directory.File("traps.log"), "-C", "-c", snmp._directory.File("snmptrapd.conf"),
            "-M", MibDirectories, "-m", "", "-On", $"udp:127.0.0.1:{snmp.TrapPort}");
        await snmp.StartSnmpdAsync();
        return snmp;
    }

    /// <summary>Starts snmpd (again, after <see cref="StopSnmpdAsync"/>): same socket, port and users.</summary>
    public async Task StartSnmpdAsync()
    {
        var skip = _output.Count;
        _snmpd = Start("snmpd", _output, ["-f", "-Lo", "-C", "-c", _directory.File("snmpd.conf"), "-M", MibDirectories, "-m", "", .. _hostResourcesBySubagent ? ["-I", "-hrSWRunTable"] : Array.Empty<string>()]);
        await WaitUntilAsync(_snmpd, "snmpd did not start",
            () => _output.Skip(skip).Any(l => l.Contains("NET-SNMP version", StringComparison.Ordinal)) && (AgentX != AgentXSocket || File.Exists(AgentXSocket)));

        if (_hostResourcesBySubagent && _subagent is null)
        {
            await StartSubagentAsync();
        }
    }

    /// <summary>net-snmp's own AgentX subagent: a second snmpd with -X, its own (empty) configuration and persistent
    /// directory, registering what the master left out (hrSWRunTable; its other registrations are refused as
    /// duplicates, which is harmless).</summary>
    private async Task StartSubagentAsync()
    {
        var directory = _directory.File("subagent");
        Directory.CreateDirectory(Path.Combine(directory, "persist"));
        var config = Path.Combine(directory, "snmpd.conf");
        await File.WriteAllTextAsync(config, string.Empty);
        var skip = _output.Count;
        _subagent = Start("snmpd", _output, "-f", "-Lo", "-X", "-C", "-c", config, "-M", MibDirectories, "-m", "", "-x", MasterAddress);
        await WaitUntilAsync(_subagent, "net-snmp's subagent did not connect",
            () => _output.Skip(skip).Any(l => l.Contains("AgentX subagent connected", StringComparison.Ordinal)));
    }

    /// <summary>Polls until <paramref name="ready"/>; fails with everything the processes printed if the process exits
    /// first or 20 s pass.</summary>
    private async Task WaitUntilAsync(Process process, string failure, Func<bool> ready)
    {
        var watch = Stopwatch.StartNew();
        while (!ready())
        {
            if (process.HasExited || watch.Elapsed > TimeSpan.FromSeconds(20))
            {
                throw new InvalidOperationException($"{failure}:\n{SnmpdOutput}");
            }

            await Task.Delay(20);
        }
    }

    public async Task StopSnmpdAsync()
    {
        if (_snmpd is { HasExited: false } snmpd)
        {
            snmpd.Kill();
            await snmpd.WaitForExitAsync();
        }
    }

    /// <summary>The traps snmptrapd logged so far (one entry per trap, varbinds numeric).</summary>
    public IReadOnlyList<string> Traps()
    {
        var path = _directory.File("traps.log");
        if (!File.Exists(path))
        {
            return [];
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var text = reader.ReadToEnd();
        return text.Split('\n').Where(l => l.Contains("1.3.6.1.6.3.1.1.4.1.0", StringComparison.Ordinal)).ToList();
    }

    /// <summary>Waits for a trap whose text contains every one of <paramref name="parts"/>.</summary>
    public async Task<string> WaitForTrapAsync(TimeSpan timeout, params string[] parts)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            var trap = Traps().FirstOrDefault(t => parts.All(p => t.Contains(p, StringComparison.Ordinal)));
            if (trap is not null)
            {
                return trap;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"no trap with {string.Join(", ", parts)} within {timeout}; received:\n{string.Join('\n', Traps())}");
    }

    /// <summary>SNMPv2c with the community.</summary>
    public static IReadOnlyList<string> V2c { get; } = ["-v2c", "-c", Community];

    /// <summary>SNMPv3 as the user, authenticated (SHA) and encrypted (AES).</summary>
    public static IReadOnlyList<string> V3AuthPriv { get; } = ["-v3", "-l", "authPriv", "-u", User, "-a", "SHA", "-A", AuthPassword, "-x", "AES", "-X", PrivPassword];

    /// <summary>Runs a net-snmp tool (snmpwalk, snmpget, snmpbulkwalk) against this snmpd; returns its standard output
    /// (the values; what a tool says on its first run on a machine goes to standard error), or throws with all it
    /// printed when the tool fails.</summary>
    public async Task<string> ToolAsync(string tool, IEnumerable<string> options, params string[] oids)
    {
        string[] all = ["-M", MibDirectories, "-m", "APPHB-MIB", "-r", "1", "-t", "5", .. options, Agent, .. oids];
        var result = await ProcessRunner.RunAsync(tool, all);
        return result.Code == 0 ? result.StandardOutput : throw new InvalidOperationException($"{tool} {string.Join(' ', all)} exited {result.Code}:\n{result.Output}");
    }

    private static Process Start(string program, ConcurrentQueue<string> output, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["SNMP_PERSISTENT_DIR"] = Path.Combine(Path.GetDirectoryName(args[Array.IndexOf(args, "-c") + 1])!, "persist");
        var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {program}");
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;

        void Add(string? line)
        {
            if (line is not null)
            {
                output.Enqueue($"{program}: {line}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in new[] { _subagent, _snmpd, _snmptrapd })
        {
            if (process is { HasExited: false })
            {
                process.Kill();
                await process.WaitForExitAsync();
            }

            process?.Dispose();
        }

        _directory.Dispose();
    }
}
