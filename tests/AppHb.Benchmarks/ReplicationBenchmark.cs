using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using AppHb.Client;
using AppHb.Linux.Files;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Issue 14's recovery point, side by side from one run: a writer makes small files at a steady rate on the
/// active node; an inotify watch on the standby's copy (both nodes' directories are on this machine's filesystem)
/// sees each arrive, whole (both contenders rename a finished file into place). apphbd replicates over the pair's
/// dedicated link; lsyncd + rsync run in the same namespaces over the same link (rsync daemon on node2), with its
/// default delay of 15 s and with delay = 1. Then apphbd's barrier latency, which lsyncd does not have.</summary>
internal sealed class ReplicationBenchmark(string apphbd, double seconds, string[]? only = null)
{
    private const int RsyncPort = 8730;
    private static readonly int[] Rates = [100, 1000];
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(40);
    /// <summary>How long barriers run unmeasured before the 300 measured (at least 100 calls).</summary>
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);

    private sealed record Row(string Contender, int Rate, int Written, IReadOnlyList<double> Milliseconds)
    {
        public int Missing => Written - Milliseconds.Count;
    }

    public async Task<string> RunAsync()
    {
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        await using var rig = await PairRig.CreateAsync();
        await ReplicationCrashTrials.StartPairAsync(rig);
        var source = ReplicationCrashTrials.Data(rig, 1);
        var replica = ReplicationCrashTrials.Data(rig, 2);
        var control = new AppHbControl(rig.Daemon(1)!.SocketPath);
        if (!await Polling.UntilAsync(async () => (await control.GetStatusAsync()).Replication is { Side: "source", Resyncing: false }, TimeSpan.FromSeconds(60), CancellationToken.None))
        {
            throw new InvalidOperationException("node1 never became the replication source:\n" + string.Join('\n', rig.Daemon(1)!.Lines));
        }

        var rows = new List<Row>();
        foreach (var rate in Part("recovery") ? Rates : [])
        {
            rows.Add(await MeasureAsync("apphbd (async)", source, replica, rate));
        }

        var barriers = Part("barrier") ? await BarriersAsync(control, rig.Daemon(1)!.SocketPath, source, Path.GetDirectoryName(replica)!) : ([], [], []);
        foreach (var me in new[] { 1, 2 })
        {
            // A connection that ended during the run is a reconnect some sample waited for: said, with why.
            foreach (var line in rig.Daemon(me)!.Lines.Where(l => l.Contains("connection ended", StringComparison.Ordinal)))
            {
                Console.Error.WriteLine($"node{me}: {line}");
            }
        }

        foreach (var delay in Part("lsyncd") ? [1, 15] : Array.Empty<int>())
        {
            var lsyncdSource = Directory.CreateDirectory(Path.Combine(rig.Directory, $"lsyncd-source-{delay}")).FullName;
            var lsyncdReplica = Directory.CreateDirectory(Path.Combine(rig.Directory, $"lsyncd-replica-{delay}")).FullName;
            using var contender = RsyncContenders.StartLsyncd(rig, $"{delay}", lsyncdSource, lsyncdReplica, delay, RsyncPort);
            foreach (var rate in Rates)
            {
                rows.Add(await MeasureAsync($"lsyncd + rsync, delay {delay} s", lsyncdSource, lsyncdReplica, rate));
            }
        }

        return Report(rows, barriers);
    }

    /// <summary>Whether <c>--only</c> (parts: recovery, barrier, lsyncd) leaves this part in; all by default.</summary>
    private bool Part(string name) => only is null || only.Contains(name, StringComparer.Ordinal);

    /// <summary>Writes <c>rate × seconds</c> files, one every 1/rate s, and times each one's arrival on the replica.</summary>
    private async Task<Row> MeasureAsync(string contender, string source, string replica, int rate)
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"rp{rate}");
        var sourceDirectory = Path.Combine(source, name);
        var replicaDirectory = Path.Combine(replica, name);
        Directory.CreateDirectory(sourceDirectory);
        // The directory first: the watch needs it on the replica (and lsyncd's first sync of it is not measured).
        if (!await Polling.UntilAsync(() => Task.FromResult(Directory.Exists(replicaDirectory)), Drain, CancellationToken.None))
        {
            throw new InvalidOperationException($"{contender}: {replicaDirectory} never appeared");
        }

        var count = (int)(rate * seconds);
        var written = new long[count];
        var arrived = new ConcurrentDictionary<int, long>();
        using var watcher = TreeWatcher.Start(replicaDirectory, change =>
        {
            var path = change.Kind == TreeChangeKind.Renamed ? change.NewPath! : change.Path;
            if (change.Kind is TreeChangeKind.Created or TreeChangeKind.Renamed
                && int.TryParse(Path.GetFileName(path), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                arrived.TryAdd(index, Stopwatch.GetTimestamp());
            }
        });
        var payload = Encoding.ASCII.GetBytes(new string('x', 100) + "\n");
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = start + (long)(i * (double)Stopwatch.Frequency / rate);
            while (Stopwatch.GetTimestamp() < due)
            {
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                if (left > TimeSpan.FromMilliseconds(2))
                {
                    Thread.Sleep(left - TimeSpan.FromMilliseconds(1));
                }
                else
                {
                    Thread.SpinWait(50);
                }
            }

            written[i] = Stopwatch.GetTimestamp();
            File.WriteAllBytes(Path.Combine(sourceDirectory, i.ToString("D6", CultureInfo.InvariantCulture)), payload);
        }

        await Polling.UntilAsync(() => Task.FromResult(arrived.Count >= count), Drain, CancellationToken.None);
        var milliseconds = arrived.Where(a => a.Key < count).Select(a => Stopwatch.GetElapsedTime(written[a.Key], a.Value).TotalMilliseconds).Order().ToList();
        var row = new Row(contender, rate, count, milliseconds);
        Console.Error.WriteLine($"{contender} at {rate} writes/s: {Summary(row)}");
        return row;
    }

    /// <summary>The barrier as an application calls it: one small write, then the barrier, 300 times each way, in
    /// turn: AppHb.Client's <see cref="ReplicationBarrier"/> (one connection kept, as a commit path calls it) and
    /// <see cref="AppHbControl.SyncReplicationAsync"/> (a connection per call, as apphbctl does). Beside them, the
    /// floor under both: what one fdatasync costs on the standby's filesystem in this run (its receive log syncs once
    /// per barrier), 300 probes just before the barriers and 300 just after.</summary>
    private static async Task<(List<double> Kept, List<double> PerCall, List<double> Disk)> BarriersAsync(AppHbControl control, string socketPath, string source, string standbyDirectory)
    {
        // From a standby that has caught up with the rows before.
        await Polling.UntilAsync(async () => (await control.GetStatusAsync()).Replication is { } r && r.Journaled == r.Acknowledged, TimeSpan.FromMinutes(2), CancellationToken.None);
        var directory = Directory.CreateDirectory(Path.Combine(source, "barrier")).FullName;
        await using var barrier = new ReplicationBarrier(socketPath);
        Func<Task>[] ways = [() => barrier.SyncAsync(), () => control.SyncReplicationAsync()];
        List<double>[] samples = [[], []];
        // Unmeasured first: this process's own JIT compiled the client's code again, optimised, on a background
        // thread a while after its first calls; on 2 cores that thread held a core for up to 3.6 ms at a time, and the
        // daemons' threads waited behind it (perf sched showed it in the slowest barriers). The project turns tiered
        // compilation off; the warm-up covers the rest of a first run (the first connection, first allocations).
        var warming = Stopwatch.StartNew();
        for (var i = 0; warming.Elapsed < WarmUp || i < 100; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, (i % 10).ToString(CultureInfo.InvariantCulture)), $"warm-up {i}");
            await ways[i % 2]();
        }

        var disk = await ProbeSyncAsync(standbyDirectory, 300);
        for (var i = 0; i < 600; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, (i % 10).ToString(CultureInfo.InvariantCulture)), $"commit {i}");
            var watch = Stopwatch.StartNew();
            try
            {
                await ways[i % 2]();
            }
            catch (AppHbException e)
            {
                Console.Error.WriteLine($"barrier {i} failed: {e.Message}");
                continue;
            }

            samples[i % 2].Add(watch.Elapsed.TotalMilliseconds);
            if (watch.Elapsed > TimeSpan.FromMilliseconds(10))
            {
                // When, so that a trace of the daemons (perf record -k mono, strace -tt) can be read at that moment.
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"barrier {i}: {watch.Elapsed.TotalMilliseconds:0.0} ms, ended {DateTime.UtcNow:HH:mm:ss.ffffff} UTC"));
            }
        }

        disk.AddRange(await ProbeSyncAsync(standbyDirectory, 300));
        samples[0].Sort();
        samples[1].Sort();
        disk.Sort();
        return (samples[0], samples[1], disk);
    }

    /// <summary>The disk under the standby as this run finds it (a virtual disk's flush costs whatever the host's
    /// does at that moment): <paramref name="count"/> fdatasyncs of 600 bytes rewritten in place in a file beside the
    /// standby's directory (as its receive log is: a block overwritten in place, then fdatasync), about one per
    /// millisecond, with both daemons idle.</summary>
    private static async Task<List<double>> ProbeSyncAsync(string directory, int count)
    {
        var path = Path.Combine(directory, "fdatasync-probe");
        var taken = new List<double>(count);
        using (var file = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite))
        {
            var bytes = new byte[600];
            RandomAccess.Write(file, bytes, 0);
            DurableFile.SyncData(file, path);
            for (var i = 0; i < count; i++)
            {
                Random.Shared.NextBytes(bytes);
                RandomAccess.Write(file, bytes, 0);
                var watch = Stopwatch.StartNew();
                DurableFile.SyncData(file, path);
                taken.Add(watch.Elapsed.TotalMilliseconds);
                await Task.Delay(1);
            }
        }

        File.Delete(path);
        return taken;
    }

    private static string Summary(Row row) =>
        string.Create(CultureInfo.InvariantCulture, $"p50 {P(row.Milliseconds, 0.5)} / p99 {P(row.Milliseconds, 0.99)} / max {P(row.Milliseconds, 1)}; {row.Missing} of {row.Written} not there {Drain.TotalSeconds:0} s after the last write");

    private static string P(IReadOnlyList<double> sorted, double q) => Percentiles.NearestRank(sorted, q) switch
    {
        double.NaN => "-",
        var v when v >= 1000 => (v / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " s",
        var v => v.ToString("0.0", CultureInfo.InvariantCulture) + " ms",
    };

    private string Report(List<Row> rows, (List<double> Kept, List<double> PerCall, List<double> Disk) barriers)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Recovery point: how long after a write its file is whole on the standby ({seconds:0} s of writes per row, 100-byte files).");
        text.AppendLine("| writer | contender | p50 | p99 | max | not there after 40 s | p99 against apphbd |");
        text.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var row in rows)
        {
            var ours = rows.First(r => r.Rate == row.Rate).Milliseconds;
            var ratio = Percentiles.NearestRank(row.Milliseconds, 0.99) / Percentiles.NearestRank(ours, 0.99);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Rate}/s | {row.Contender} | {P(row.Milliseconds, 0.5)} | {P(row.Milliseconds, 0.99)} | {P(row.Milliseconds, 1)} | {row.Missing} of {row.Written} | {(double.IsNaN(ratio) ? "-" : ratio.ToString("0.0", CultureInfo.InvariantCulture) + "x")} |");
        }

        text.AppendLine();
        text.AppendLine("apphbd's barrier (a write, then the barrier; 300 calls each way, in turn, idle writer; lsyncd has no barrier):");
        text.AppendLine(CultureInfo.InvariantCulture, $"- AppHb.Client's ReplicationBarrier (one connection kept): p50 {P(barriers.Kept, 0.5)} / p99 {P(barriers.Kept, 0.99)} / max {P(barriers.Kept, 1)} (target p99 2 ms)");
        text.AppendLine(CultureInfo.InvariantCulture, $"- AppHb.Client's SyncReplicationAsync (a connection per call): p50 {P(barriers.PerCall, 0.5)} / p99 {P(barriers.PerCall, 0.99)} / max {P(barriers.PerCall, 1)}");
        text.AppendLine(CultureInfo.InvariantCulture, $"- the floor under both, this run's disk: one fdatasync of 600 bytes on the standby's filesystem (300 before, 300 after): p50 {P(barriers.Disk, 0.5)} / p99 {P(barriers.Disk, 0.99)} / max {P(barriers.Disk, 1)}");
        text.AppendLine("Targets (issue 14): async recovery point p99 <= 50 ms; barrier p99 <= 2 ms.");
        return text.ToString();
    }
}
