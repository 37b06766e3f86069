using System.Diagnostics;
using System.Globalization;
using System.Text;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Two apphbd as they ship, fencing with the rig's agent (the fence is inside every figure). The service is
/// the group (started on the active node only, after the fence), or with <paramref name="addressOnly"/> runs on both
/// nodes as keepalived's and heartbeat's do, and only the address moves.</summary>
internal sealed class ApphbdContender(TimeSpan keepalive, TimeSpan deadtime, bool addressOnly = false) : IPairContender
{
    public string Name => $"apphbd {Ms(keepalive)}/{Ms(deadtime)} + fence, {(addressOnly ? "address only" : "two links")}";

    public TimeSpan Interval => keepalive;

    public bool AddressOnly => addressOnly;

    public string ProcessName => "apphbd";

    public TimeSpan Timeout => 2 * deadtime + TimeSpan.FromSeconds(2);

    public async Task StartPairAsync(PairRig rig)
    {
        foreach (var me in new[] { 1, 2 })
        {
            // apphbd's own default for these timings (the benchmark writes every setting out).
            var fenceDelay = AppHb.Core.Cluster.ClusterTimings.DefaultFenceDelay(keepalive, deadtime);
            await rig.StartAsync(me, rig.Config(me, rig.Answering(me), fenceDelay: Ms(fenceDelay), keepalive: Ms(keepalive),
                warntime: Ms(2 * keepalive), deadtime: Ms(deadtime), initdead: "10s", group: addressOnly ? "[]" : "[app]"));
        }

        await PairContenders.UntilAsync(async () => await rig.AnswerOnServiceIpAsync() == "node1", TimeSpan.FromSeconds(60), () => StoryAsync(rig), "node1 never answered");
        await WaitStandbyAsync(rig, 2);
    }

    public async Task RestartAsync(PairRig rig, int me, int active)
    {
        await rig.Daemon(me)!.StartProcessAsync();
        await WaitStandbyAsync(rig, me);
    }

    /// <summary>Until the node stands by, in sync, hearing its peer on both links.</summary>
    public Task WaitStandbyAsync(PairRig rig, int me) => PairContenders.UntilAsync(async () =>
    {
        try
        {
            var cluster = (await new AppHbControl(rig.Daemon(me)!.SocketPath).GetStatusAsync()).Cluster;
            return cluster is { Role: "standby", InSync: true, Verdict: "healthy", PeerRole: "active" };
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            return false;
        }
    }, TimeSpan.FromSeconds(60), () => StoryAsync(rig), $"node{me} never stood by");

    /// <summary>Until the node is active and has heard its standby peer on the same data generation.</summary>
    public Task WaitInSyncAsync(PairRig rig, int me) => PairContenders.UntilAsync(async () =>
        (await new AppHbControl(rig.Daemon(me)!.SocketPath).GetStatusAsync()).Cluster is { Role: "active", InSync: true, PeerRole: "standby" },
        TimeSpan.FromSeconds(60), () => StoryAsync(rig), $"node{me} never heard its standby in sync");

    public Task KillDaemonAsync(PairRig rig, int me)
    {
        ProcessRunner.Signal(rig.Daemon(me)!.Pid, 9);
        return Task.CompletedTask;
    }

    public Task<string> StoryAsync(PairRig rig) => Task.FromResult(string.Join('\n', new[] { 1, 2 }.SelectMany(n =>
        (rig.Daemon(n)?.Lines ?? []).Where(l => l.Contains("Pair:", StringComparison.Ordinal)).TakeLast(30).Select(l => $"node{n} {l}"))));

    internal static string Ms(TimeSpan span) => $"{span.TotalMilliseconds:0}ms";
}

/// <summary>keepalived, VRRPv3 on the LAN (it has no second path to the peer), both nodes BACKUP with nopreempt (a node
/// that returns stands by, as ours does), node1 at the higher priority.</summary>
internal sealed class KeepalivedContender(TimeSpan advert) : IPairContender
{
    private readonly PairContenders.NodeProcesses _nodes = new();

    public string Name => $"keepalived VRRPv3 advert {ApphbdContender.Ms(advert)}, no fence";

    public TimeSpan Interval => advert;

    public string ProcessName => "keepalived";

    public TimeSpan Timeout => 4 * advert + TimeSpan.FromSeconds(2);

    public async Task StartPairAsync(PairRig rig)
    {
        foreach (var me in new[] { 1, 2 })
        {
            await File.WriteAllTextAsync(Config(rig, me), $$"""
                global_defs {
                    router_id node{{me}}
                    vrrp_version 3
                }
                vrrp_instance service {
                    state BACKUP
                    nopreempt
                    interface lan0
                    virtual_router_id 51
                    priority {{(me == 1 ? 150 : 100)}}
                    advert_int {{advert.TotalSeconds.ToString(CultureInfo.InvariantCulture)}}
                    virtual_ipaddress {
                        {{PairRig.ServiceIp}}/24 dev lan0
                    }
                }
                """);
        }

        await StartNodeAsync(rig, 1);
        await PairContenders.UntilAsync(async () => await rig.AnswerOnServiceIpAsync() == "node1", TimeSpan.FromSeconds(60), () => StoryAsync(rig), "node1 never answered");
        await RestartAsync(rig, 2, 1);
    }

    public async Task RestartAsync(PairRig rig, int me, int active)
    {
        await StartNodeAsync(rig, me);
        await PairContenders.UntilAsync(() => Task.FromResult(_nodes.Said(me, "Entering BACKUP STATE")), TimeSpan.FromSeconds(30), () => StoryAsync(rig), $"node{me} never stood by");
        // Heard the master's advertisements for a while.
        await Task.Delay(4 * advert);
    }

    private async Task StartNodeAsync(PairRig rig, int me)
    {
        await _nodes.StartServiceAsync(rig, me);
        // A powered-off node's pid files name processes that are gone or, reused, someone else's.
        foreach (var pid in new[] { $"keepalived{me}.pid", $"vrrp{me}.pid" })
        {
            File.Delete(Path.Combine(rig.Directory, pid));
        }

        _nodes.Start(rig, me, "keepalived", "-n", "-l", "-D", "--vrrp", "-f", Config(rig, me),
            "-p", Path.Combine(rig.Directory, $"keepalived{me}.pid"), "-r", Path.Combine(rig.Directory, $"vrrp{me}.pid"));
    }

    private static string Config(PairRig rig, int me) => Path.Combine(rig.Directory, $"keepalived{me}.conf");

    public Task KillDaemonAsync(PairRig rig, int me) => PairContenders.KillAsync(rig, me, ProcessName);

    public Task<string> StoryAsync(PairRig rig) => Task.FromResult(_nodes.Story());
}

/// <summary>Linux-HA heartbeat 3 (no CRM, haresources), unicast on both links, auto_failback off; each node in a UTS
/// and mount namespace of its own so that it has its own name, /etc/ha.d and /var/lib/heartbeat.</summary>
internal sealed class HeartbeatContender(TimeSpan keepalive, TimeSpan deadtime) : IPairContender
{
    private readonly PairContenders.NodeProcesses _nodes = new();

    public string Name => $"heartbeat {ApphbdContender.Ms(keepalive)}/{ApphbdContender.Ms(deadtime)}, two links, no STONITH";

    public TimeSpan Interval => keepalive;

    public string ProcessName => "heartbeat";

    // Its takeover runs shell resource scripts after deadtime: seconds at 100 ms / 500 ms here.
    public TimeSpan Timeout => 2 * deadtime + TimeSpan.FromSeconds(8);

    public async Task StartPairAsync(PairRig rig)
    {
        foreach (var me in new[] { 1, 2 })
        {
            var etc = Path.Combine(Root(rig, me), "etc");
            Directory.CreateDirectory(Path.Combine(Root(rig, me), "lib", "cores"));
            Machine.Run("cp", "-a", "/etc/ha.d/.", etc);
            await File.WriteAllTextAsync(Path.Combine(etc, "ha.cf"), $"""
                logfile {Log(rig, me)}
                keepalive {ApphbdContender.Ms(keepalive)}
                warntime {ApphbdContender.Ms(deadtime / 2)}
                deadtime {ApphbdContender.Ms(deadtime)}
                initdead {ApphbdContender.Ms(2 * deadtime)}
                udpport 694
                ucast ded0 10.216.1.{3 - me}
                ucast lan0 10.216.2.{3 - me}
                auto_failback off
                node node1
                node node2
                crm no

                """);
            await File.WriteAllTextAsync(Path.Combine(etc, "authkeys"), "auth 1\n1 sha1 apphb-benchmark\n");
            File.SetUnixFileMode(Path.Combine(etc, "authkeys"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await File.WriteAllTextAsync(Path.Combine(etc, "haresources"), $"node1 IPaddr2::{PairRig.ServiceIp}/24/lan0\n");
        }

        foreach (var me in new[] { 1, 2 })
        {
            await StartNodeAsync(rig, me);
        }

        await PairContenders.UntilAsync(async () => await rig.AnswerOnServiceIpAsync() == "node1", TimeSpan.FromSeconds(120), () => StoryAsync(rig), "node1 never answered");
        await PairContenders.UntilAsync(async () => (await File.ReadAllTextAsync(Log(rig, 2))).Contains("Initial resource acquisition complete", StringComparison.Ordinal),
            TimeSpan.FromSeconds(120), () => StoryAsync(rig), "node2 never stood by");
    }

    public async Task RestartAsync(PairRig rig, int me, int active)
    {
        var from = new FileInfo(Log(rig, me)).Length;
        await StartNodeAsync(rig, me);
        await PairContenders.UntilAsync(async () => (await File.ReadAllTextAsync(Log(rig, me)))[(int)from..].Contains("Initial resource acquisition complete", StringComparison.Ordinal),
            TimeSpan.FromSeconds(120), () => StoryAsync(rig), $"node{me} never stood by");
    }

    private async Task StartNodeAsync(PairRig rig, int me)
    {
        await _nodes.StartServiceAsync(rig, me);
        var root = Root(rig, me);
        _nodes.Start(rig, me, "unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c",
            $"hostname node{me} && mount --bind {root}/etc /etc/ha.d && mount --bind {root}/lib /var/lib/heartbeat && mount -t tmpfs none /run"
            + " && mkdir -p /run/heartbeat/ccm /run/heartbeat/crm /run/resource-agents && exec /usr/libexec/heartbeat/heartbeat -f");
    }

    private static string Root(PairRig rig, int me) => Path.Combine(rig.Directory, $"heartbeat{me}");

    private static string Log(PairRig rig, int me) => Path.Combine(Root(rig, me), "ha-log");

    public Task KillDaemonAsync(PairRig rig, int me) => PairContenders.KillAsync(rig, me, ProcessName);

    public async Task<string> StoryAsync(PairRig rig)
    {
        var story = new StringBuilder();
        foreach (var me in new[] { 1, 2 })
        {
            if (File.Exists(Log(rig, me)))
            {
                foreach (var line in (await File.ReadAllLinesAsync(Log(rig, me))).Where(l => !l.Contains("WARN", StringComparison.Ordinal)).TakeLast(20))
                {
                    story.AppendLine(CultureInfo.InvariantCulture, $"node{me} {line}");
                }
            }
        }

        return story + _nodes.Story();
    }
}

internal static class PairContenders
{
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<Task<string>> story, string failure)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > timeout)
            {
                throw new InvalidOperationException($"{failure} within {timeout.TotalSeconds:0} s\n{await story()}");
            }

            await Task.Delay(20);
        }
    }

    public static async Task KillAsync(PairRig rig, int me, string name)
    {
        foreach (var pid in await FailoverBenchmark.ProcessesAsync(rig.Node(me), name))
        {
            ProcessRunner.Signal(pid, 9);
        }
    }

    /// <summary>The processes a product runs in each node (itself, and the service that answers on port 8080), with
    /// what they printed. Powering a node off kills them.</summary>
    public sealed class NodeProcesses
    {
        private readonly List<string>[] _output = [[], [], []];
        private readonly Lock _lock = new();

        public async Task StartServiceAsync(PairRig rig, int me)
        {
            Start(rig, me, rig.AnswerProgram[0], [.. rig.AnswerProgram.Skip(1), $"node{me}"]);
            // Listening before the product may move the address to this node.
            await UntilAsync(async () => (await ProcessRunner.RunAsync("ip", "netns", "exec", rig.Node(me).Name, "ss", "-Hltn", "sport = :8080")).StandardOutput.Length > 0,
                TimeSpan.FromSeconds(10), () => Task.FromResult(Story()), $"node{me}'s service never listened");
        }

        public void Start(PairRig rig, int me, string file, params string[] args)
        {
            lock (_lock)
            {
                _output[me].Clear();
            }

            var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { "netns", "exec", rig.Node(me).Name, file }.Concat(args))
            {
                start.ArgumentList.Add(arg);
            }

            var process = Process.Start(start)!;
            process.OutputDataReceived += (_, e) => Add(me, e.Data);
            process.ErrorDataReceived += (_, e) => Add(me, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        private void Add(int me, string? line)
        {
            if (line is not null)
            {
                lock (_lock)
                {
                    _output[me].Add(line);
                }
            }
        }

        public bool Said(int me, string text)
        {
            lock (_lock)
            {
                return _output[me].Any(l => l.Contains(text, StringComparison.Ordinal));
            }
        }

        public string Story()
        {
            lock (_lock)
            {
                return string.Join('\n', new[] { 1, 2 }.SelectMany(n => _output[n].TakeLast(20).Select(l => $"node{n} {l}")));
            }
        }
    }
}
