using System.Globalization;
using System.Text;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Issue 14's crash trials at length (<see cref="ReplicationCrashTrials"/>) on two apphbd as they ship
/// (NativeAOT) in network namespaces; each trial's outcome goes to standard error as it happens. Parts (--only):
/// <c>sync</c>, the barrier-confirmed writer (nothing confirmed may be lost); <c>async</c>, a writer at 100 writes/s
/// that never waits, its losses counted; <c>lsyncd</c>, the same writer and crashes with lsyncd + rsync (delay 1 s and
/// its default 15 s) in the same namespaces: the side-by-side the issue asks for.</summary>
internal sealed class ReplicationCrashBenchmark(string apphbd, int trials, int seed, int lossTrials = 20, string[]? only = null)
{
    private const int Rate = 100;
    private static readonly (int Min, int Max) LossCrashAfter = (1000, 10_000);

    public async Task<string> RunAsync()
    {
        // DaemonProcess starts this binary instead of the JIT build.
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        await using var rig = await PairRig.CreateAsync();
        await ReplicationCrashTrials.StartPairAsync(rig);
        var text = new StringBuilder();
        if (Part("sync"))
        {
            var report = await new ReplicationCrashTrials(rig, seed, line => Console.Error.WriteLine(line)).RunAsync(trials, CancellationToken.None);
            text.Append($"""
                Two apphbd (keepalive 100 ms, deadtime 1 s, fence_apphb_netns) in namespaces, each replicating its directory over
                the dedicated link; a writer on the active node writes a file, waits for the barrier (AppHb.Client's
                SyncReplicationAsync), and counts the write confirmed; 0.3-2 s in, the active node is powered off or its apphbd
                killed; after the peer took over, every confirmed file is read there. The killed node is rebooted, resynced in
                reverse, and is the standby of the next trial.
                {report}

                """);
        }

        var rows = new List<LossRow>();
        if (Part("async"))
        {
            var report = await new ReplicationCrashTrials(rig, seed + 1, line => Console.Error.WriteLine(line))
            {
                PacedWritesPerSecond = Rate,
                CrashAfterMilliseconds = LossCrashAfter,
                Label = "a",
            }.RunAsync(lossTrials, CancellationToken.None);
            text.Append($"""
                apphbd asynchronous (the same pair, the writer never calls the barrier):
                {report}

                """);
            rows.Add(new LossRow("apphbd, async (no barrier)", report.Confirmed, report.LostPerTrial));
        }

        foreach (var delay in Part("lsyncd") ? [1, 15] : Array.Empty<int>())
        {
            rows.Add(await new LsyncdCrashTrials(rig, delay, Rate, LossCrashAfter, seed + 1 + delay, 8800 + (delay * 100)).RunAsync(lossTrials));
        }

        if (rows.Count > 0)
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"""
                Acknowledged writes lost when the active node dies mid-load, side by side: a writer at {Rate} writes/s acknowledges
                each write once written (no barrier); {LossCrashAfter.Min / 1000}-{LossCrashAfter.Max / 1000} s in, apphbd's node is powered off or its apphbd killed (the
                peer fences and takes over), lsyncd and its rsync are killed (their power cut); then every acknowledged file is
                read on the other node. {lossTrials} crashes per row.
                """));
            text.AppendLine(CultureInfo.InvariantCulture, $"{"contender",-30} {"acknowledged",12} {"lost",6} {"per crash p50 / min-max",24} {"lost per 1,000",15}");
            foreach (var row in rows)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"{row.Contender,-30} {row.Written,12} {row.Lost,6} {row.Spread(),24} {row.PerThousand,15:0.0}");
            }

            if (rows.FirstOrDefault(r => r.Contender.StartsWith("apphbd", StringComparison.Ordinal)) is { } ours)
            {
                foreach (var peer in rows.Where(r => r != ours))
                {
                    text.AppendLine(ours.Lost == 0
                        ? string.Create(CultureInfo.InvariantCulture, $"{peer.Contender}: lost {peer.Lost} where apphbd lost none")
                        : string.Create(CultureInfo.InvariantCulture, $"{peer.Contender} / apphbd: {peer.PerThousand / ours.PerThousand:0.0}x the losses per 1,000 acknowledged writes"));
                }
            }
        }

        return text.ToString();
    }

    private bool Part(string name) => only is null || only.Contains(name, StringComparer.Ordinal);
}
