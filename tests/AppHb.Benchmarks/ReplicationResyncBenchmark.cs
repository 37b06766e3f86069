using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AppHb.Client;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Issue 14's resync and bulk figures, side by side from one run, over the pair's dedicated link shaped to
/// 1 Gbit/s (tc tbf on both ends): a 1 GiB tree of 256 files of 4 MiB is replicated from empty (bulk throughput);
/// then the standby's apphbd stops, 1 % of the tree changes in random 4 KiB blocks, the journal's limit (1 MiB) lets
/// the gap go, and the standby's return is a difference resync. rsync (a daemon on node2, as lsyncd uses it) brings
/// copies of the tree as it was to the changed tree over the same link, with <c>--inplace</c> and by default. Both
/// apphbd block sizes: 64 KiB (the default) and 4 KiB (<c>block-size-kib: 4</c>, an application's page).</summary>
/// <param name="bulkOnly">Only the bulk rows (apphbd at 64 KiB blocks and rsync into an empty directory, side by
/// side): the quick run for working on the throughput.</param>
/// <param name="resyncOnly">The 4 KiB pair and rsync's rows alone (no 64 KiB pair, no 100,000 small files).</param>
internal sealed class ReplicationResyncBenchmark(string apphbd, int seed, bool bulkOnly = false, bool resyncOnly = false)
{
    private const int RsyncPort = 8731;
    private const int Files = 256;
    private const int FileBytes = 4 << 20;
    private const int ChangedBlock = 4096;
    private const long TreeBytes = (long)Files * FileBytes;
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(10);

    private const int ManyFiles = 100_000;

    private sealed record Row(string Contender, double Seconds, long PayloadBytes, long LinkBytes, string Note, double Cpu = double.NaN)
    {
        /// <summary>apphbd's garbage collections on both nodes during the row, and the time they paused its threads.</summary>
        public string Collections { get; init; } = "-";
    }

    /// <summary>Replicating <see cref="ManyFiles"/> small files from empty: time, CPU of every process of the
    /// contender on both nodes, and their resident memory after.</summary>
    private sealed record ManyRow(string Contender, double Seconds, double Cpu, long ResidentBytes, string Note);

    public async Task<string> RunAsync()
    {
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        var ours = new List<Row>();
        var rsync = new List<Row>();
        var bulk = new List<Row>();
        var many = new List<ManyRow>();
        foreach (var blockKiB in bulkOnly ? [64] : resyncOnly ? [4] : new[] { 64, 4 })
        {
            // A pair of its own each: the same tree, the same changes (one seed), from empty.
            await using var rig = await PairRig.CreateAsync();
            await ShapeAsync(rig);
            var (full, resync) = await ApphbdAsync(rig, blockKiB, rsyncRounds: blockKiB == 4 ? rsync : null, bulk, many: blockKiB == 64 && !resyncOnly ? many : null);
            bulk.Insert(bulk.Count(r => r.Contender.StartsWith("apphbd", StringComparison.Ordinal)), full);
            ours.Add(resync);
        }

        return bulkOnly ? Report([], bulk, []) : Report([.. ours, .. rsync], bulk, many);
    }

    /// <summary>Both ends of the dedicated link send at most 1 Gbit/s.</summary>
    private static async Task ShapeAsync(PairRig rig)
    {
        foreach (var node in new[] { rig.A, rig.B })
        {
            var (code, output) = await ProcessRunner.RunAsync("ip", "netns", "exec", node.Name, "tc", "qdisc", "add", "dev", "ded0", "root", "tbf", "rate", "1gbit", "burst", "1mb", "latency", "50ms");
            if (code != 0)
            {
                throw new InvalidOperationException($"tc tbf on {node.Name}: {output}");
            }
        }
    }

    private async Task<(Row Full, Row Resync)> ApphbdAsync(PairRig rig, int blockKiB, List<Row>? rsyncRounds, List<Row> bulk, List<ManyRow>? many)
    {
        foreach (var me in new[] { 1, 2 })
        {
            Directory.CreateDirectory(ReplicationCrashTrials.Data(rig, me));
            await rig.StartAsync(me, rig.Config(me, "command: [/bin/sleep, \"1000\"]", linkHold: "1s", extra: $"""
                replication:
                  path: {ReplicationCrashTrials.Data(rig, me)}
                  journal: {Path.Combine(rig.Directory, $"node{me}.journal")}
                  journal-limit-mib: 1
                  block-size-kib: {blockKiB}
                """));
        }

        var control = new AppHbControl(rig.Daemon(1)!.SocketPath);
        if (!await Polling.UntilAsync(async () => (await control.GetStatusAsync()).Replication is { Side: "source", Resyncing: false }, TimeSpan.FromSeconds(60), CancellationToken.None))
        {
            throw new InvalidOperationException("node1 never became the replication source:\n" + string.Join('\n', rig.Daemon(1)!.Lines));
        }

        // Bulk: the tree written on the active node, timed until the standby confirms all of it.
        var source = Path.Combine(ReplicationCrashTrials.Data(rig, 1), "tree");
        var contents = TreeContents();
        var linkBefore = await LinkBytesAsync(rig);
        var cpuBefore = Cpu(rig.Daemon(1)!.Pid) + Cpu(rig.Daemon(2)!.Pid);
        var gcBefore = await CollectionsAsync(rig);
        var watch = Stopwatch.StartNew();
        WriteTree(source, contents);
        var written = watch.Elapsed;
        contents = null;
        await CaughtUpAsync(rig, control, "the first sync");
        var full = new Row($"apphbd, {blockKiB} KiB blocks", watch.Elapsed.TotalSeconds, TreeBytes, await LinkBytesAsync(rig) - linkBefore, "1 GiB written and replicated from empty",
            Cpu(rig.Daemon(1)!.Pid) + Cpu(rig.Daemon(2)!.Pid) - cpuBefore);
        var gcAfter = await CollectionsAsync(rig);
        full = full with { Collections = $"{gcAfter.Count - gcBefore.Count:0}, {gcAfter.PauseSeconds - gcBefore.PauseSeconds:0.00} s paused" };
        Console.Error.WriteLine($"{full.Contender}: first sync {full.Seconds:0.0} s (the writer done after {written.TotalSeconds:0.0} s), {Rate(full)}");
        if (bulkOnly)
        {
            var empty = Directory.CreateDirectory(Path.Combine(rig.Directory, "rsync-empty")).FullName;
            bulk.Add((await RsyncAsync(rig, source, empty, null)) with { Contender = "rsync -a, into an empty directory", Note = "the tree already written" });
            return (full, full);
        }

        // rsync's copies of the tree as it was, mtimes kept (its quick check skips the unchanged files).
        var copies = new List<string>();
        if (rsyncRounds is not null)
        {
            foreach (var name in new[] { "rsync-inplace", "rsync-default", "rsync-inplace-fsync" })
            {
                var copy = Path.Combine(rig.Directory, name);
                Machine.Run("cp", "-a", source, copy);
                copies.Add(copy);
            }
        }

        // Apart: the standby stops; 1 % of the tree changes; the journal (1 MiB) cannot hold that gap.
        var before = (await control.GetStatusAsync()).Replication!;
        if (await rig.Daemon(2)!.StopAsync() is var code and not 0)
        {
            Console.Error.WriteLine($"node2's apphbd stopped with status {code}:\n  " + string.Join("\n  ", rig.Daemon(2)!.Lines.TakeLast(12)));
        }

        var changed = ChangeBlocks(source);
        await Task.Delay(TimeSpan.FromSeconds(2));
        // What the setup left in the page cache (rsync's three copies, 3 GiB, and the changed blocks) on the disk
        // before anything is timed: both nodes' trees share this machine's one filesystem, so the standby's syncfs
        // would otherwise write the benchmark's own copies out inside apphbd's resync (a pair apart for hours has no
        // such backlog). rsync's rows come after it and find the disk as clean.
        Machine.Run("sync");
        linkBefore = await LinkBytesAsync(rig);
        cpuBefore = Cpu(rig.Daemon(1)!.Pid);
        await rig.Daemon(2)!.StartProcessAsync();
        // From the new connection (the standby's walk of its replica included) to the standby confirming the resync.
        var connected = await UntilAsync(async () => (await control.GetStatusAsync()).Replication is { } r && r.Connections > before.Connections, "the standby's new connection");
        var resyncStarted = Stopwatch.StartNew();
        var status = await CaughtUpAsync(rig, control, "the resync");
        var resync = new Row($"apphbd, {blockKiB} KiB blocks", resyncStarted.Elapsed.TotalSeconds, status.ResyncTotalBytes ?? -1, await LinkBytesAsync(rig) - linkBefore,
            $"{status.Resyncs - before.Resyncs} resync; the standby's apphbd start not counted ({connected.TotalSeconds:0.0} s)",
            Cpu(rig.Daemon(1)!.Pid) - cpuBefore + Cpu(rig.Daemon(2)!.Pid));
        Console.Error.WriteLine($"{resync.Contender}: resync {resync.Seconds:0.00} s, {resync.PayloadBytes} payload bytes, {resync.LinkBytes} on the link ({changed} blocks changed)");
        Identical(source, Path.Combine(ReplicationCrashTrials.Data(rig, 2), "tree"), resync.Contender);

        if (rsyncRounds is not null)
        {
            rsyncRounds.Add(await RsyncAsync(rig, source, copies[0], "--inplace"));
            rsyncRounds.Add(await RsyncAsync(rig, source, copies[1], null));
            // Durable when it ends, as apphbd's resync is (its cut synced before it is acknowledged): rsync alone
            // leaves what it wrote in the page cache.
            rsyncRounds.Add(await RsyncAsync(rig, source, copies[2], "--inplace --fsync"));
            // rsync's bulk: the whole tree into an empty directory over the same link.
            var empty = Directory.CreateDirectory(Path.Combine(rig.Directory, "rsync-empty")).FullName;
            bulk.Add((await RsyncAsync(rig, source, empty, null)) with { Contender = "rsync -a, into an empty directory", Note = "the tree already written" });
        }

        if (many is not null)
        {
            many.Add(await ApphbdManyAsync(rig, control));
            many.Add(await LsyncdManyAsync(rig));
        }

        return (full, resync);
    }

    private static async Task<TimeSpan> UntilAsync(Func<Task<bool>> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        if (!await Polling.UntilAsync(condition, Bound, CancellationToken.None))
        {
            throw new InvalidOperationException($"{what} did not happen within {Bound.TotalMinutes:0} minutes");
        }

        return watch.Elapsed;
    }

    /// <summary>Waits until the standby confirms everything journaled; says on stderr when the replication status
    /// changes on the way (where the time goes), and returns the largest resync seen.</summary>
    private static async Task<ReplicationStatus> CaughtUpAsync(PairRig rig, AppHbControl control, string what)
    {
        try
        {
            return await CaughtUpAsync(control, what);
        }
        catch (DaemonUnavailableException e)
        {
            // Where it stopped, from both daemons' own output.
            throw new InvalidOperationException($"{what}: {e.Message}\n" + string.Join('\n', new[] { 1, 2 }.Select(n =>
                $"node{n}'s apphbd ({(rig.Daemon(n)!.IsRunning ? "running" : "exited")}), last lines:\n  " + string.Join("\n  ", rig.Daemon(n)!.Lines.TakeLast(30)))), e);
        }
    }

    private static async Task<ReplicationStatus> CaughtUpAsync(AppHbControl control, string what)
    {
        ReplicationStatus? last = null;
        long? resyncBytes = null;
        string? shown = null;
        var watch = Stopwatch.StartNew();
        await UntilAsync(async () =>
        {
            last = (await control.GetStatusAsync()).Replication;
            if (last is null)
            {
                return false;
            }

            resyncBytes = Math.Max(resyncBytes ?? 0, last.ResyncTotalBytes ?? 0);
            var state = $"resyncing {last.Resyncing}, resync {last.ResyncSentBytes}/{last.ResyncTotalBytes}, journaled {last.Journaled}, acknowledged {last.Acknowledged}, connections {last.Connections}, last ended: {last.LastEnded ?? "-"}";
            if (state != shown)
            {
                Console.Error.WriteLine($"  {what} +{watch.Elapsed.TotalSeconds:0.00} s: {state}");
                shown = state;
            }

            return last is { Resyncing: false, Journaled: { } j, Acknowledged: { } a } && j == a && j > 0;
        }, what);
        return last! with { ResyncTotalBytes = resyncBytes };
    }

    /// <summary>Bytes both ends of the dedicated link sent (the payload, its framing and the pair's heartbeats).</summary>
    private static async Task<long> LinkBytesAsync(PairRig rig)
    {
        long total = 0;
        foreach (var node in new[] { rig.A, rig.B })
        {
            var json = await node.IpAsync("-s", "-j", "link", "show", "ded0");
            using var document = JsonDocument.Parse(json);
            total += document.RootElement[0].GetProperty("stats64").GetProperty("tx").GetProperty("bytes").GetInt64();
        }

        return total;
    }

    /// <summary>The tree's files' contents (1 GiB, made before the clock starts: the seeded generator alone takes
    /// seconds for it, which timed the writer's random numbers rather than the replication).</summary>
    private byte[][] TreeContents()
    {
        var random = new Random(seed);
        var contents = new byte[Files][];
        for (var i = 0; i < Files; i++)
        {
            contents[i] = new byte[FileBytes];
            random.NextBytes(contents[i]);
        }

        return contents;
    }

    private static void WriteTree(string root, byte[][] contents)
    {
        Directory.CreateDirectory(root);
        for (var i = 0; i < contents.Length; i++)
        {
            var temporary = Path.Combine(root, $".f{i:D3}.tmp");
            File.WriteAllBytes(temporary, contents[i]);
            File.Move(temporary, Path.Combine(root, $"f{i:D3}"));
        }
    }

    /// <summary>1 % of the tree's 4 KiB blocks, chosen at random (a block chosen twice is written twice), rewritten
    /// in place. Returns how many distinct blocks changed.</summary>
    private int ChangeBlocks(string root)
    {
        var random = new Random(seed + 1);
        var blocks = (int)(TreeBytes / ChangedBlock / 100);
        var chosen = new HashSet<(int, int)>();
        var bytes = new byte[ChangedBlock];
        for (var n = 0; n < blocks; n++)
        {
            var (file, block) = (random.Next(Files), random.Next(FileBytes / ChangedBlock));
            chosen.Add((file, block));
            random.NextBytes(bytes);
            using var stream = new FileStream(Path.Combine(root, $"f{file:D3}"), FileMode.Open, FileAccess.Write);
            stream.Position = (long)block * ChangedBlock;
            stream.Write(bytes);
        }

        return chosen.Count;
    }

    /// <summary>rsync from node1 to an rsync daemon on node2 whose module is the old copy.</summary>
    private static async Task<Row> RsyncAsync(PairRig rig, string source, string copy, string? option)
    {
        using var contender = new Contender(RsyncContenders.StartDaemon(rig, Path.GetFileName(copy), copy, RsyncPort));
        var daemon = contender.Processes[0];
        await Task.Delay(TimeSpan.FromSeconds(1));
        var linkBefore = await LinkBytesAsync(rig);
        var watch = Stopwatch.StartNew();
        string[] args = ["netns", "exec", rig.A.Name, "/usr/bin/time", "-f", "client cpu %U %S", "rsync", "-a", "--stats", .. option is null ? Array.Empty<string>() : option.Split(' '), source + "/", $"rsync://10.216.1.2:{RsyncPort}/data/"];
        var (code, output) = await ProcessRunner.RunAsync("ip", args);
        var seconds = watch.Elapsed.TotalSeconds;
        if (code != 0)
        {
            throw new InvalidOperationException($"rsync {option}: {output}");
        }

        var sent = long.Parse(System.Text.RegularExpressions.Regex.Match(output, @"Total bytes sent: ([\d,]+)").Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture);
        var received = long.Parse(System.Text.RegularExpressions.Regex.Match(output, @"Total bytes received: ([\d,]+)").Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture);
        var client = System.Text.RegularExpressions.Regex.Match(output, @"client cpu ([\d.]+) ([\d.]+)");
        // The daemon's per-connection process is reaped by the daemon: its time is in the daemon's children's.
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        var cpu = double.Parse(client.Groups[1].Value, CultureInfo.InvariantCulture) + double.Parse(client.Groups[2].Value, CultureInfo.InvariantCulture) + Cpu(daemon.Id, children: true);
        var row = new Row($"rsync -a{(option is null ? string.Empty : " " + option)}", seconds, sent + received, await LinkBytesAsync(rig) - linkBefore,
            "its quick check skips files of the same size and mtime" + (option?.Contains("--fsync", StringComparison.Ordinal) == true ? "; every file it wrote fsync'd (durable when it ends, as apphbd's resync)" : string.Empty), cpu);
        Console.Error.WriteLine($"{row.Contender}: {row.Seconds:0.00} s, {sent} sent + {received} received, {row.LinkBytes} on the link");
        Identical(source, copy, row.Contender);
        return row;
    }

    /// <summary>CPU seconds a process used (utime + stime), with its waited-for children's when asked.</summary>
    private static double Cpu(int pid, bool children = false)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After the command: state is field 3; utime 14, stime 15, cutime 16, cstime 17 (proc(5)).
        var ticks = long.Parse(fields[14 - 3], CultureInfo.InvariantCulture) + long.Parse(fields[15 - 3], CultureInfo.InvariantCulture);
        if (children)
        {
            ticks += long.Parse(fields[16 - 3], CultureInfo.InvariantCulture) + long.Parse(fields[17 - 3], CultureInfo.InvariantCulture);
        }

        return ticks / 100.0;
    }

    private static long Resident(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;

    /// <summary>Writes <see cref="ManyFiles"/> files of 1 KiB in 100 directories under <paramref name="root"/>.</summary>
    private static void WriteMany(string root)
    {
        var content = new byte[1024];
        for (var i = 0; i < ManyFiles; i++)
        {
            var directory = Path.Combine(root, $"d{i % 100:D2}");
            if (i < 100)
            {
                Directory.CreateDirectory(directory);
            }

            content[0] = (byte)(i & 0xff);
            File.WriteAllBytes(Path.Combine(directory, $"f{i:D6}"), content);
        }
    }

    private static int CountFiles(string root) =>
        Directory.Exists(root) ? Directory.EnumerateFiles(root, "f*", SearchOption.AllDirectories).Count() : 0;

    private static async Task<ManyRow> ApphbdManyAsync(PairRig rig, AppHbControl control)
    {
        var (one, two) = (rig.Daemon(1)!.Pid, rig.Daemon(2)!.Pid);
        var cpuBefore = Cpu(one) + Cpu(two);
        var watch = Stopwatch.StartNew();
        WriteMany(Path.Combine(ReplicationCrashTrials.Data(rig, 1), "many"));
        await CaughtUpAsync(rig, control, "100,000 files");
        var seconds = watch.Elapsed.TotalSeconds;
        if (CountFiles(Path.Combine(ReplicationCrashTrials.Data(rig, 2), "many")) != ManyFiles)
        {
            throw new InvalidOperationException("apphbd: the standby does not hold the 100,000 files");
        }

        // The collector's heap beside each: what the rest of the resident memory is (code, pools, stacks, locked pages).
        var heaps = new List<double>();
        foreach (var me in new[] { 1, 2 })
        {
            heaps.Add(Sample(await rig.ScrapeAsync(me), "apphb_gc_heap_bytes"));
        }

        var row = new ManyRow("apphbd (both nodes)", seconds, Cpu(one) + Cpu(two) - cpuBefore, Resident(one) + Resident(two),
            $"node1 {Resident(one) / 1e6:0} MB (GC heap {heaps[0] / 1e6:0} MB) + node2 {Resident(two) / 1e6:0} MB (GC heap {heaps[1] / 1e6:0} MB); the 1 GiB tree is there too");
        Console.Error.WriteLine($"{row.Contender}: 100,000 files in {row.Seconds:0.0} s, {row.Cpu:0.0} CPU s, {row.ResidentBytes / 1e6:0} MB resident");
        return row;
    }

    /// <summary>lsyncd (delay 1 s) on node1 and an rsync daemon on node2, from empty, the same files.</summary>
    private static async Task<ManyRow> LsyncdManyAsync(PairRig rig)
    {
        var source = Directory.CreateDirectory(Path.Combine(rig.Directory, "lsyncd-many-source")).FullName;
        var replica = Directory.CreateDirectory(Path.Combine(rig.Directory, "lsyncd-many-replica")).FullName;
        using var contender = RsyncContenders.StartLsyncd(rig, "many", source, replica, 1, RsyncPort);
        var (daemon, lsyncd) = (contender.Processes[0], contender.Processes[1]);
        await Task.Delay(TimeSpan.FromSeconds(3));
        var cpuBefore = Cpu(lsyncd.Id, children: true) + Cpu(daemon.Id, children: true);
        var watch = Stopwatch.StartNew();
        WriteMany(source);
        await UntilAsync(() => Task.FromResult(CountFiles(replica) >= ManyFiles), "lsyncd's copy of 100,000 files");
        var seconds = watch.Elapsed.TotalSeconds;
        // Its last rsync reaped, so that its time is counted.
        await Task.Delay(TimeSpan.FromSeconds(2));
        var row = new ManyRow("lsyncd + rsync, delay 1 s", seconds, Cpu(lsyncd.Id, children: true) + Cpu(daemon.Id, children: true) - cpuBefore, Resident(lsyncd.Id) + Resident(daemon.Id),
            $"lsyncd {Resident(lsyncd.Id) / 1e6:0.0} MB + rsync daemon {Resident(daemon.Id) / 1e6:0.0} MB (its rsync runs come and go)");
        Console.Error.WriteLine($"{row.Contender}: 100,000 files in {row.Seconds:0.0} s, {row.Cpu:0.0} CPU s, {row.ResidentBytes / 1e6:0} MB resident");
        return row;
    }

    private static void Identical(string source, string copy, string contender)
    {
        foreach (var file in Directory.GetFiles(source))
        {
            var other = Path.Combine(copy, Path.GetFileName(file));
            if (!File.Exists(other) || !File.ReadAllBytes(file).AsSpan().SequenceEqual(File.ReadAllBytes(other)))
            {
                throw new InvalidOperationException($"{contender}: {other} differs from {file} after the resync");
            }
        }
    }

    private static string Rate(Row row) =>
        string.Create(CultureInfo.InvariantCulture, $"{row.PayloadBytes / row.Seconds / 1e6:0} MB/s, {row.PayloadBytes * 8 / row.Seconds / 1e9 * 100:0} % of the link's 1 Gbit/s");

    private static string Megabytes(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:0.0} MB");

    private static string CpuText(double cpu) => double.IsNaN(cpu) ? "-" : string.Create(CultureInfo.InvariantCulture, $"{cpu:0.0} s");

    private string Report(List<Row> rows, List<Row> bulk, List<ManyRow> many)
    {
        var text = new StringBuilder();
        if (rows.Count == 0)
        {
            return BulkReport(text, bulk).ToString();
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"Difference resync: a 1 GiB tree (256 files of 4 MiB) with 1 % of its 4 KiB blocks rewritten at random while apart (seed {seed}); dedicated link shaped to 1 Gbit/s.");
        text.AppendLine("| contender | time | payload (apphbd: what differed; rsync: sent + received) | bytes on the link, both ways | CPU, both nodes | time against rsync --inplace | link bytes against rsync --inplace | note |");
        text.AppendLine("|---|---|---|---|---|---|---|---|");
        var reference = rows.First(r => r.Contender.EndsWith("--inplace", StringComparison.Ordinal));
        foreach (var row in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Contender} | {row.Seconds:0.00} s | {Megabytes(row.PayloadBytes)} | {Megabytes(row.LinkBytes)} | {CpuText(row.Cpu)} | {row.Seconds / reference.Seconds:0.00}x | {(double)row.LinkBytes / reference.LinkBytes:0.00}x | {row.Note} |");
        }

        text.AppendLine();
        BulkReport(text, bulk);
        if (many.Count > 0)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"{ManyFiles:N0} files of 1 KiB in 100 directories, written on the active node into a replicated tree (apphbd: beside the 1 GiB tree; lsyncd: an empty one), until all are on the standby.");
            text.AppendLine("| contender | time | CPU, both nodes | resident memory after | note |");
            text.AppendLine("|---|---|---|---|---|");
            foreach (var row in many)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Contender} | {row.Seconds:0.0} s | {CpuText(row.Cpu)} | {row.ResidentBytes / 1e6:0} MB | {row.Note} |");
            }
        }

        text.AppendLine();
        text.AppendLine("Targets (issue 14): resync bytes <= rsync's, time <= 0.5 x rsync's; bulk >= 90 % of the link rate.");
        return text.ToString();
    }

    private static StringBuilder BulkReport(StringBuilder text, List<Row> bulk)
    {
        text.AppendLine("Bulk: the same tree written on the active node from empty, until the standby confirms all of it (write and replication overlap).");
        text.AppendLine("| contender | time | throughput | bytes on the link | CPU, both nodes | CPU per GB | garbage collections, both nodes |");
        text.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var row in bulk)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Contender} | {row.Seconds:0.0} s | {Rate(row)} | {Megabytes(row.LinkBytes)} | {CpuText(row.Cpu)} | {CpuText(row.Cpu / (row.PayloadBytes / 1e9))} | {row.Collections} |");
        }

        return text;
    }

    /// <summary>Both apphbd's collections since their start and the seconds those paused their threads (/metrics).</summary>
    private static async Task<(double Count, double PauseSeconds)> CollectionsAsync(PairRig rig)
    {
        double count = 0, pause = 0;
        foreach (var me in new[] { 1, 2 })
        {
            var text = await rig.ScrapeAsync(me);
            count += Sample(text, "apphb_gc_collections_total");
            pause += Sample(text, "apphb_gc_pause_seconds_total");
        }

        return (count, pause);
    }

    private static double Sample(string exposition, string name) =>
        exposition.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(name.Length + 1)..].Trim(), CultureInfo.InvariantCulture)).DefaultIfEmpty(double.NaN).First();
}
