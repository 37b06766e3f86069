using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using AppHb.Client;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Issue 13's benchmark: the pair's failover against keepalived (VRRPv3) and Linux-HA heartbeat in the same
/// namespaces (<see cref="PairRig"/>): the time from the active node's power-off, or from its daemon's SIGKILL, to the
/// client's first TCP answer from the other node on the service IP; who holds the address after every fault of the
/// rig; apphbd's controlled switchover; what the peer heartbeats cost at the shortest interval.</summary>
internal sealed class FailoverBenchmark(string apphbd, int trials, string[]? only)
{
    private readonly StringBuilder _report = new();

    public async Task<string> RunAsync()
    {
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        // The fault matrix and the switchover run each product at a short interval, the cost at the shortest.
        var apphbdAt50 = new ApphbdContender(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(150));
        var apphbdAt100 = new ApphbdContender(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(300));
        var keepalivedAt50 = new KeepalivedContender(TimeSpan.FromMilliseconds(50));
        var heartbeatAt100 = new HeartbeatContender(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));
        var contenders = new IPairContender[]
        {
            apphbdAt50,
            apphbdAt100,
            new ApphbdContender(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3)),
            new ApphbdContender(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(150), addressOnly: true),
            keepalivedAt50,
            new KeepalivedContender(TimeSpan.FromSeconds(1)),
            heartbeatAt100,
            new HeartbeatContender(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10)),
        };
        // --only names parts (failover, faults, switchover, cost) and words of the contenders' names (apphbd,
        // keepalived, heartbeat, "address only", ...): what it names, or everything.
        string[] allParts = ["failover", "faults", "switchover", "cost"];
        var part = only?.Intersect(allParts).ToArray() is { Length: > 0 } parts ? parts : allParts;
        var products = only?.Except(allParts).ToArray() is { Length: > 0 } named ? named : ["apphbd", "keepalived", "heartbeat"];
        bool Included(IPairContender contender) => products.Any(p => contender.Name.Contains(p, StringComparison.Ordinal));
        if (part.Contains("failover"))
        {
            _report.AppendLine(CultureInfo.InvariantCulture, $"Failover: from the fault to the client's first TCP answer from the other node, {trials} trials per row; 'both' counts trials after which both nodes held the service IP (1 s after that answer).");
            _report.AppendLine(CultureInfo.InvariantCulture, $"  {"contender",-48} {"fault",-10} {"p50",8} {"p99",8} {"max",8} {"both",5}   p50 vs apphbd at the same interval");
            var ours = new Dictionary<(TimeSpan, string), List<(string What, double P50)>>();
            foreach (var contender in contenders.Where(Included))
            {
                foreach (var fault in new[] { "power-off", "kill" })
                {
                    var (seconds, both) = await FailoverTrialsAsync(contender, fault);
                    var p50 = Percentiles.NearestRank(seconds, 0.5);
                    if (contender is ApphbdContender ourContender)
                    {
                        if (!ours.TryGetValue((contender.Interval, fault), out var atInterval))
                        {
                            ours[(contender.Interval, fault)] = atInterval = [];
                        }

                        atInterval.Add((ourContender.AddressOnly ? "address only" : "group", p50));
                    }

                    var versus = contender is not ApphbdContender && ours.TryGetValue((contender.Interval, fault), out var our)
                        ? "   " + string.Join(", ", our.Select(o => $"{p50 / o.P50:0.00}x apphbd's {o.P50:0.000} s ({o.What})")) : "";
                    _report.AppendLine(CultureInfo.InvariantCulture,
                        $"  {contender.Name,-48} {fault,-10} {p50,7:0.000}s {Percentiles.NearestRank(seconds, 0.99),7:0.000}s {(seconds.Count == 0 ? double.NaN : seconds[^1]),7:0.000}s {both,5}{versus}");
                    Console.Error.WriteLine(_report.ToString().Split('\n')[^2]);
                }
            }

            _report.AppendLine();
        }

        if (part.Contains("faults"))
        {
            await FaultMatrixAsync([.. new IPairContender[] { apphbdAt100, keepalivedAt50, heartbeatAt100 }.Where(Included)]);
        }

        if (part.Contains("switchover") && products.Contains("apphbd"))
        {
            await SwitchoverAsync(apphbdAt100);
        }

        if (part.Contains("cost"))
        {
            await CostAsync([.. new IPairContender[] { apphbdAt50, keepalivedAt50, heartbeatAt100 }.Where(Included)]);
        }

        return _report.ToString();
    }

    /// <summary>A rig whose service, for every contender alike, is native/answer.c compiled into it: the failover's
    /// time is then the product's work, not a Python interpreter's start.</summary>
    private static async Task<PairRig> CreateRigAsync()
    {
        var rig = await PairRig.CreateAsync();
        try
        {
            var answer = Path.Combine(rig.Directory, "answer");
            Machine.Run("cc", "-O2", "-Wall", "-o", answer, Path.Combine(AppContext.BaseDirectory, "native", "answer.c"));
            rig.AnswerProgram = [answer];
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    /// <summary><see cref="trials"/> failovers, alternating which node is active; the seconds sorted, and how many
    /// trials ended with both nodes holding the address.</summary>
    private async Task<(List<double> Seconds, int Both)> FailoverTrialsAsync(IPairContender contender, string fault)
    {
        await using var rig = await CreateRigAsync();
        await contender.StartPairAsync(rig);
        var active = 1;
        var seconds = new List<double>();
        var both = 0;
        for (var trial = 0; trial < trials; trial++)
        {
            var survivor = 3 - active;
            var since = Stopwatch.GetTimestamp();
            var answer = rig.Gateway.Run(() => FirstAnswerFrom($"node{survivor}", since, contender.Timeout));
            var faultAt = DateTime.UtcNow;
            if (fault == "power-off")
            {
                await rig.PowerOffAsync(active);
            }
            else
            {
                await contender.KillDaemonAsync(rig, active);
            }

            var took = await answer;
            if (double.IsNaN(took))
            {
                throw new InvalidOperationException($"{contender.Name}: node{survivor} never answered within {contender.Timeout.TotalSeconds:0} s after the {fault} of node{active} (trial {trial + 1})\n{await contender.StoryAsync(rig)}");
            }

            seconds.Add(took);
            await Task.Delay(TimeSpan.FromSeconds(1));
            if (Environment.GetEnvironmentVariable("APPHB_BENCH_STORY") is not null)
            {
                Console.Error.WriteLine($"--- {contender.Name} {fault} of node{active} at {faultAt:HH:mm:ss.fff} UTC, trial {trial + 1}: {took:0.000} s\n{await contender.StoryAsync(rig)}");
            }

            if (await rig.HoldsServiceIpAsync(active) && await rig.HoldsServiceIpAsync(survivor))
            {
                both++;
            }

            // The faulted node reset, then back as the standby.
            await rig.PowerOffAsync(active);
            await rig.PowerOnAsync(active);
            await contender.RestartAsync(rig, active, survivor);
            active = survivor;
        }

        seconds.Sort();
        return (seconds, both);
    }

    /// <summary>Every fault of the rig once per contender: who holds the address while it lasts (after every product's
    /// detection time has passed) and after it healed.</summary>
    private async Task FaultMatrixAsync(IPairContender[] contenders)
    {
        _report.AppendLine("Who holds the service IP during each fault (held past every product's detection time) and 2 s after it healed; node1 active before it:");
        var faults = new (string Name, Func<PairRig, IPairContender, Task> Cut, Func<PairRig, Task> Heal)[]
        {
            ("power-off of the active", (r, _) => r.PowerOffAsync(1), _ => Task.CompletedTask),
            ("daemon SIGKILL on the active", (r, c) => c.KillDaemonAsync(r, 1), _ => Task.CompletedTask),
            ("dedicated link cut", (r, _) => r.CutDedicatedAsync(true), r => r.CutDedicatedAsync(false)),
            ("LAN cut on the active", (r, _) => r.CutLanPortAsync(1, true), r => r.CutLanPortAsync(1, false)),
            ("LAN cut between the nodes only", (r, _) => r.CutLanBetweenAsync(true), r => r.CutLanBetweenAsync(false)),
            ("both links cut", async (r, _) => { await r.CutDedicatedAsync(true); await r.CutLanBetweenAsync(true); },
                async r => { await r.CutDedicatedAsync(false); await r.CutLanBetweenAsync(false); }),
        };
        _report.AppendLine(CultureInfo.InvariantCulture, $"  {"fault",-32} {string.Join(" ", contenders.Select(c => $"{c.Name,-48}"))}");
        foreach (var (name, cut, heal) in faults)
        {
            var row = new StringBuilder().Append(CultureInfo.InvariantCulture, $"  {name,-32}");
            foreach (var contender in contenders)
            {
                await using var rig = await CreateRigAsync();
                await contender.StartPairAsync(rig);
                await cut(rig, contender);
                await Task.Delay(contender.Timeout);
                var during = await HoldersAsync(rig);
                await heal(rig);
                await Task.Delay(TimeSpan.FromSeconds(2));
                var after = await HoldersAsync(rig);
                row.Append(CultureInfo.InvariantCulture, $" {$"{during}, healed: {after}",-48}");
            }

            _report.AppendLine(row.ToString());
            Console.Error.WriteLine(row.ToString());
        }

        _report.AppendLine("  (a node whose LAN port is cut still holds the address on its own interface: nobody reaches it there)");
        _report.AppendLine();
    }

    private static async Task<string> HoldersAsync(PairRig rig)
    {
        var holders = new List<string>();
        foreach (var me in new[] { 1, 2 })
        {
            if (await rig.HoldsServiceIpAsync(me))
            {
                holders.Add($"node{me}");
            }
        }

        return holders.Count switch { 0 => "nobody", 2 => "BOTH", _ => holders[0] };
    }

    /// <summary>apphbd's controlled switchover: the request to the active node's control socket (what
    /// <c>apphbctl switchover</c> sends), to the client's first answer from the other node.</summary>
    private async Task SwitchoverAsync(ApphbdContender contender)
    {
        await using var rig = await CreateRigAsync();
        await contender.StartPairAsync(rig);
        var active = 1;
        var seconds = new List<double>();
        for (var trial = 0; trial < trials; trial++)
        {
            var other = 3 - active;
            var since = Stopwatch.GetTimestamp();
            var answer = rig.Gateway.Run(() => FirstAnswerFrom($"node{other}", since, TimeSpan.FromSeconds(10)));
            var result = await new AppHbControl(rig.Daemon(active)!.SocketPath).ControlAsync(ControlAction.Switchover, "");
            var took = await answer;
            if (double.IsNaN(took))
            {
                throw new InvalidOperationException($"switchover {trial + 1}: node{other} never answered ({result.Message})\n{await contender.StoryAsync(rig)}");
            }

            seconds.Add(took);
            // A switchover is refused until the new active node has heard the standby take its data generation.
            await contender.WaitStandbyAsync(rig, active);
            await contender.WaitInSyncAsync(rig, other);
            active = other;
        }

        seconds.Sort();
        _report.AppendLine(CultureInfo.InvariantCulture, $"Controlled switchover ({contender.Name}, {trials} trials, alternating): p50 {Percentiles.NearestRank(seconds, 0.5):0.000} s, p99 {Percentiles.NearestRank(seconds, 0.99):0.000} s, max {seconds[^1]:0.000} s (target p99 <= 0.300 s plus the group's start)");
        _report.AppendLine();
    }

    /// <summary>What the peer heartbeats cost at the shortest interval, both nodes healthy and idle for 10 s: CPU of
    /// the product's processes and IP packets sent, per node.</summary>
    private async Task CostAsync(IPairContender[] contenders)
    {
        _report.AppendLine("Cost of the peer heartbeats, the pair idle for 10 s (per node: CPU of the product's processes, frames sent on its two links):");
        foreach (var contender in contenders)
        {
            await using var rig = await CreateRigAsync();
            await contender.StartPairAsync(rig);
            await Task.Delay(TimeSpan.FromSeconds(2));
            var cpu0 = await CpuAsync(rig, contender);
            var sent0 = await PacketsSentAsync(rig);
            var watch = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(10));
            var cpu1 = await CpuAsync(rig, contender);
            if (Environment.GetEnvironmentVariable("APPHB_BENCH_STORY") is not null)
            {
                Console.Error.WriteLine($"{contender.Name}: {cpu0} -> {cpu1}; {string.Join(',', await ProcessesAsync(rig.Node(1), contender.ProcessName))}");
            }

            var sent1 = await PacketsSentAsync(rig);
            var elapsed = watch.Elapsed.TotalSeconds;
            _report.AppendLine(CultureInfo.InvariantCulture,
                $"  {contender.Name,-48} CPU {(cpu1 - cpu0).TotalSeconds / elapsed / 2 * 100,5:0.00} %   packets {(sent1 - sent0) / elapsed / 2,6:0.0}/s");
        }

        _report.AppendLine();
    }

    private static async Task<TimeSpan> CpuAsync(PairRig rig, IPairContender contender)
    {
        var total = TimeSpan.Zero;
        foreach (var me in new[] { 1, 2 })
        {
            foreach (var pid in await ProcessesAsync(rig.Node(me), contender.ProcessName))
            {
                try
                {
                    total += Machine.CpuTime(pid);
                }
                catch (IOException)
                {
                    // Gone meanwhile.
                }
            }
        }

        return total;
    }

    /// <summary>Frames sent on both nodes' links (VRRP goes out on a raw socket that the IP counters miss).</summary>
    private static async Task<long> PacketsSentAsync(PairRig rig)
    {
        long sent = 0;
        foreach (var me in new[] { 1, 2 })
        {
            foreach (var link in new[] { "ded0", "lan0" })
            {
                var (_, output) = await ProcessRunner.RunAsync("ip", "netns", "exec", rig.Node(me).Name, "cat", $"/sys/class/net/{link}/statistics/tx_packets");
                sent += long.Parse(output.Trim(), CultureInfo.InvariantCulture);
            }
        }

        return sent;
    }

    /// <summary>The processes in a node's namespace whose command name is <paramref name="name"/>.</summary>
    public static async Task<List<int>> ProcessesAsync(NetworkNamespace node, string name)
    {
        var (_, output) = await ProcessRunner.RunAsync("ip", "netns", "pids", node.Name);
        var pids = new List<int>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var pid = int.Parse(line, CultureInfo.InvariantCulture);
            try
            {
                if (File.ReadAllText($"/proc/{pid}/comm").Trim() == name)
                {
                    pids.Add(pid);
                }
            }
            catch (IOException)
            {
                // Gone meanwhile.
            }
        }

        return pids;
    }

    /// <summary>Runs in the client's namespace: opens a connection to the service IP every 5 ms (each one waited for
    /// up to a second, so a connection whose SYN went to a dead node's hardware address does not hold the next ones
    /// back) until one is answered by <paramref name="expected"/>; the seconds since <paramref name="since"/>, or NaN
    /// after <paramref name="timeout"/>.</summary>
    private static double FirstAnswerFrom(string expected, long since, TimeSpan timeout)
    {
        var target = new IPEndPoint(IPAddress.Parse(PairRig.ServiceIp), 8080);
        var pending = new List<(Socket Socket, long Opened)>();
        var buffer = new byte[64];
        try
        {
            while (Stopwatch.GetElapsedTime(since) < timeout)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
                try
                {
                    socket.Connect(target);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
                {
                }
                catch (SocketException)
                {
                    socket.Dispose();
                    Thread.Sleep(2);
                    continue;
                }

                pending.Add((socket, Stopwatch.GetTimestamp()));
                var next = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 200;
                while (Stopwatch.GetTimestamp() < next && pending.Count > 0)
                {
                    var writable = pending.Select(p => p.Socket).ToList();
                    var failed = pending.Select(p => p.Socket).ToList();
                    Socket.Select(null, writable, failed, 1000);
                    foreach (var done in writable.Union(failed))
                    {
                        pending.RemoveAll(p => p.Socket == done);
                        using (done)
                        {
                            if (failed.Contains(done) || (int)done.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)! != 0)
                            {
                                continue;
                            }

                            done.Blocking = true;
                            done.ReceiveTimeout = 500;
                            int read;
                            try
                            {
                                read = done.Receive(buffer);
                            }
                            catch (SocketException)
                            {
                                read = 0;
                            }

                            if (Encoding.ASCII.GetString(buffer, 0, read).Trim() == expected)
                            {
                                return Stopwatch.GetElapsedTime(since).TotalSeconds;
                            }
                        }
                    }

                    foreach (var old in pending.Where(p => Stopwatch.GetElapsedTime(p.Opened) > TimeSpan.FromSeconds(1)).ToList())
                    {
                        pending.Remove(old);
                        old.Socket.Dispose();
                    }
                }
            }

            return double.NaN;
        }
        finally
        {
            foreach (var (socket, _) in pending)
            {
                socket.Dispose();
            }
        }
    }
}

/// <summary>One product run as a pair on <see cref="PairRig"/>: node1 is made active first.</summary>
internal interface IPairContender
{
    string Name { get; }

    /// <summary>How often the nodes send heartbeats (advertisements).</summary>
    TimeSpan Interval { get; }

    /// <summary>The command name of its processes (/proc/PID/comm).</summary>
    string ProcessName { get; }

    /// <summary>Longer than any failover of this product.</summary>
    TimeSpan Timeout { get; }

    /// <summary>Starts node1, waits until the client reaches it on the service IP, then node2 as its standby.</summary>
    Task StartPairAsync(PairRig rig);

    /// <summary>Starts the product on a node just powered on and waits until it stands by for <paramref name="active"/>.</summary>
    Task RestartAsync(PairRig rig, int me, int active);

    Task KillDaemonAsync(PairRig rig, int me);

    /// <summary>What both nodes logged, to tell why a trial failed.</summary>
    Task<string> StoryAsync(PairRig rig);
}
