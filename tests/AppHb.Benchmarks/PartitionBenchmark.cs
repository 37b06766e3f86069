using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>The randomized partition checker (issue 13) at length: <see cref="PartitionTrials"/> on two apphbd as they
/// ship (NativeAOT) in network namespaces; each trial's faults and outcome go to standard error as they happen.</summary>
internal sealed class PartitionBenchmark(string apphbd, int trials, int seed)
{
    public async Task<string> RunAsync()
    {
        // DaemonProcess starts this binary instead of the JIT build.
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        await using var rig = await PairRig.CreateAsync();
        await PartitionTrials.StartPairAsync(rig);
        var report = await new PartitionTrials(rig, seed, line => Console.Error.WriteLine(line)).RunAsync(trials, CancellationToken.None);
        return $"""
            Two apphbd (keepalive 100 ms, deadtime 1 s, fence delay 600 ms, fence_apphb_netns) in namespaces; one or two random
            faults per trial at random moments, held 0.5-4 s, then healed (a killed or powered-off node reset); a checker
            samples both nodes every 5 ms: the service IP on an interface that is up, and the group's process.
            {report}
            """;
    }
}
