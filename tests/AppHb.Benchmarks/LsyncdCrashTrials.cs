using System.Diagnostics;
using System.Globalization;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>lsyncd + rsync under the crash trials' paced writer: lsyncd on node1 syncs a fresh directory to an rsync
/// daemon on node2 over the dedicated link; a writer makes one small file every 1/rate s, each acknowledged once
/// written (lsyncd has no barrier); at a random moment lsyncd and its rsync are killed (the active node's power cut,
/// as far as they are concerned: what they had not sent is gone); after the receiving rsync has had time to finish,
/// every acknowledged file is read on node2.</summary>
internal sealed class LsyncdCrashTrials(PairRig rig, int delay, int rate, (int Min, int Max) crashAfterMilliseconds, int seed, int port)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>What the receiving rsync may still finish after the sender died: a file it was given whole.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    private readonly Random _random = new(seed);

    public async Task<LossRow> RunAsync(int trials)
    {
        var lost = new List<int>();
        long written = 0;
        for (var trial = 1; trial <= trials; trial++)
        {
            var root = Path.Combine(rig.Directory, $"lsyncd-crash-{delay}", trial.ToString("D4", CultureInfo.InvariantCulture));
            var source = Directory.CreateDirectory(Path.Combine(root, "source")).FullName;
            var replica = Directory.CreateDirectory(Path.Combine(root, "replica")).FullName;
            // A file before lsyncd starts: its arrival says lsyncd's first full sync is done and it is watching.
            File.WriteAllText(Path.Combine(source, "ready"), "ready\n");
            using var contender = RsyncContenders.StartLsyncd(rig, $"crash-{delay}-{trial}", source, replica, delay, port + trial);
            if (!await Polling.UntilAsync(() => Task.FromResult(File.Exists(Path.Combine(replica, "ready"))), Bound, CancellationToken.None))
            {
                throw new InvalidOperationException($"lsyncd, delay {delay} s, trial {trial}: its first sync never reached node2");
            }

            var crashAfter = TimeSpan.FromMilliseconds(_random.Next(crashAfterMilliseconds.Min, crashAfterMilliseconds.Max));
            var acknowledged = new List<string>();
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; ; i++)
            {
                var due = TimeSpan.FromSeconds((double)i / rate) - Stopwatch.GetElapsedTime(started);
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due);
                }

                if (Stopwatch.GetElapsedTime(started) >= crashAfter)
                {
                    break;
                }

                var name = i.ToString("D6", CultureInfo.InvariantCulture);
                await File.WriteAllTextAsync(Path.Combine(source, name), Expected(name));
                acknowledged.Add(name);
            }

            // lsyncd (through the `ip netns exec` it replaced) and every rsync it started.
            contender.Processes[1].Kill(entireProcessTree: true);
            await Task.Delay(Settle);
            var missing = acknowledged.Count(name => Content(replica, name) != Expected(name));
            lost.Add(missing);
            written += acknowledged.Count;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"lsyncd + rsync, delay {delay} s, trial {trial}: killed after {crashAfter.TotalSeconds:0.0} s; {acknowledged.Count} writes acknowledged, {missing} of them missing on node2"));
        }

        return new LossRow($"lsyncd + rsync, delay {delay} s", written, lost);
    }

    private static string Expected(string name) => $"{name} written and acknowledged\n";

    private static string? Content(string directory, string name)
    {
        try
        {
            return File.ReadAllText(Path.Combine(directory, name));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }
}

/// <summary>One contender's acknowledged writes lost, crash by crash.</summary>
internal sealed record LossRow(string Contender, long Written, IReadOnlyList<int> LostPerTrial)
{
    public long Lost => LostPerTrial.Sum(l => (long)l);

    public double PerThousand => Written == 0 ? 0 : 1000.0 * Lost / Written;

    public string Spread()
    {
        var sorted = LostPerTrial.Order().ToArray();
        return sorted.Length == 0 ? "-" : string.Create(CultureInfo.InvariantCulture,
            $"{sorted[Math.Clamp((int)Math.Ceiling(0.5 * sorted.Length) - 1, 0, sorted.Length - 1)]} / {sorted[0]}-{sorted[^1]}");
    }
}
