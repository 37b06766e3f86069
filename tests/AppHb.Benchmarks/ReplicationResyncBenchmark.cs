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
internal sealed class ReplicationResyncBenchmark(string apphbd, int seed)
{
    private const int RsyncPort = 8731;
    private const int Files = 256;
    private const int FileBytes = 4 << 20;
    private const int ChangedBlock = 4096;
    private const long TreeBytes = (long)Files * FileBytes;
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(10);

    private sealed record Row(string Contender, double Seconds, long PayloadBytes, long LinkBytes, string Note);

    public async Task<string> RunAsync()
    {
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        var ours = new List<Row>();
        var rsync = new List<Row>();
        var bulk = new List<Row>();
        foreach (var blockKiB in new[] { 64, 4 })
        {
            // A pair of its own each: the same tree, the same changes (one seed), from empty.
            await using var rig = await PairRig.CreateAsync();
            await ShapeAsync(rig);
            var (full, resync) = await ApphbdAsync(rig, blockKiB, rsyncRounds: blockKiB == 4 ? rsync : null);
            bulk.Add(full);
            ours.Add(resync);
        }

        return Report([.. ours, .. rsync], bulk);
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

    private async Task<(Row Full, Row Resync)> ApphbdAsync(PairRig rig, int blockKiB, List<Row>? rsyncRounds)
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
        var linkBefore = await LinkBytesAsync(rig);
        var watch = Stopwatch.StartNew();
        WriteTree(source);
        await CaughtUpAsync(control, "the first sync");
        var full = new Row($"apphbd, {blockKiB} KiB blocks", watch.Elapsed.TotalSeconds, TreeBytes, await LinkBytesAsync(rig) - linkBefore, "1 GiB written and replicated from empty");
        Console.Error.WriteLine($"{full.Contender}: first sync {full.Seconds:0.0} s, {Rate(full)}");

        // rsync's copies of the tree as it was, mtimes kept (its quick check skips the unchanged files).
        var copies = new List<string>();
        if (rsyncRounds is not null)
        {
            foreach (var name in new[] { "rsync-inplace", "rsync-default" })
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
        linkBefore = await LinkBytesAsync(rig);
        await rig.Daemon(2)!.StartProcessAsync();
        // From the new connection (the standby's walk of its replica included) to the standby confirming the resync.
        var connected = await UntilAsync(async () => (await control.GetStatusAsync()).Replication is { } r && r.Connections > before.Connections, "the standby's new connection");
        var resyncStarted = Stopwatch.StartNew();
        var status = await CaughtUpAsync(control, "the resync");
        var resync = new Row($"apphbd, {blockKiB} KiB blocks", resyncStarted.Elapsed.TotalSeconds, status.ResyncTotalBytes ?? -1, await LinkBytesAsync(rig) - linkBefore,
            $"{status.Resyncs - before.Resyncs} resync; the standby's apphbd start not counted ({connected.TotalSeconds:0.0} s)");
        Console.Error.WriteLine($"{resync.Contender}: resync {resync.Seconds:0.00} s, {resync.PayloadBytes} payload bytes, {resync.LinkBytes} on the link ({changed} blocks changed)");
        Identical(source, Path.Combine(ReplicationCrashTrials.Data(rig, 2), "tree"), resync.Contender);

        if (rsyncRounds is not null)
        {
            rsyncRounds.Add(await RsyncAsync(rig, source, copies[0], "--inplace"));
            rsyncRounds.Add(await RsyncAsync(rig, source, copies[1], null));
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
            var state = $"resyncing {last.Resyncing}, resync {last.ResyncSentBytes}/{last.ResyncTotalBytes}, journaled {last.Journaled}, acknowledged {last.Acknowledged}";
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

    private void WriteTree(string root)
    {
        Directory.CreateDirectory(root);
        var random = new Random(seed);
        var buffer = new byte[FileBytes];
        for (var i = 0; i < Files; i++)
        {
            random.NextBytes(buffer);
            var temporary = Path.Combine(root, $".f{i:D3}.tmp");
            File.WriteAllBytes(temporary, buffer);
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
        var name = Path.GetFileName(copy);
        var conf = Path.Combine(rig.Directory, $"{name}.conf");
        await File.WriteAllTextAsync(conf, $"""
            use chroot = no
            uid = root
            gid = root
            [data]
              path = {copy}
              read only = no

            """);
        var daemon = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", rig.B.Name, "rsync", "--daemon", "--no-detach", $"--config={conf}", $"--port={RsyncPort}", "--address=10.216.1.2"]))!;
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            var linkBefore = await LinkBytesAsync(rig);
            var watch = Stopwatch.StartNew();
            string[] args = ["netns", "exec", rig.A.Name, "rsync", "-a", "--stats", .. option is null ? Array.Empty<string>() : [option], source + "/", $"rsync://10.216.1.2:{RsyncPort}/data/"];
            var (code, output) = await ProcessRunner.RunAsync("ip", args);
            var seconds = watch.Elapsed.TotalSeconds;
            if (code != 0)
            {
                throw new InvalidOperationException($"rsync {option}: {output}");
            }

            var sent = long.Parse(System.Text.RegularExpressions.Regex.Match(output, @"Total bytes sent: ([\d,]+)").Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture);
            var received = long.Parse(System.Text.RegularExpressions.Regex.Match(output, @"Total bytes received: ([\d,]+)").Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture);
            var row = new Row($"rsync -a{(option is null ? string.Empty : " " + option)}", seconds, sent + received, await LinkBytesAsync(rig) - linkBefore, "its quick check skips files of the same size and mtime");
            Console.Error.WriteLine($"{row.Contender}: {row.Seconds:0.00} s, {sent} sent + {received} received, {row.LinkBytes} on the link");
            Identical(source, copy, row.Contender);
            return row;
        }
        finally
        {
            daemon.Kill(entireProcessTree: true);
            await daemon.WaitForExitAsync();
            daemon.Dispose();
        }
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

    private string Report(List<Row> rows, List<Row> bulk)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Difference resync: a 1 GiB tree (256 files of 4 MiB) with 1 % of its 4 KiB blocks rewritten at random while apart (seed {seed}); dedicated link shaped to 1 Gbit/s.");
        text.AppendLine("| contender | time | payload (apphbd: what differed; rsync: sent + received) | bytes on the link, both ways | time against rsync --inplace | link bytes against rsync --inplace | note |");
        text.AppendLine("|---|---|---|---|---|---|---|");
        var reference = rows.First(r => r.Contender.EndsWith("--inplace", StringComparison.Ordinal));
        foreach (var row in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Contender} | {row.Seconds:0.00} s | {Megabytes(row.PayloadBytes)} | {Megabytes(row.LinkBytes)} | {row.Seconds / reference.Seconds:0.00}x | {(double)row.LinkBytes / reference.LinkBytes:0.00}x | {row.Note} |");
        }

        text.AppendLine();
        text.AppendLine("Bulk: the same tree written on the active node from empty, until the standby confirms all of it (write and replication overlap).");
        text.AppendLine("| contender | time | throughput | bytes on the link |");
        text.AppendLine("|---|---|---|---|");
        foreach (var row in bulk)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Contender} | {row.Seconds:0.0} s | {Rate(row)} | {Megabytes(row.LinkBytes)} |");
        }

        text.AppendLine();
        text.AppendLine("Targets (issue 14): resync bytes <= rsync's, time <= 0.5 x rsync's; bulk >= 90 % of the link rate.");
        return text.ToString();
    }
}
