using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Issue 14's crash trials at length (<see cref="ReplicationCrashTrials"/>) on two apphbd as they ship
/// (NativeAOT) in network namespaces; each trial's outcome goes to standard error as it happens.</summary>
internal sealed class ReplicationCrashBenchmark(string apphbd, int trials, int seed)
{
    public async Task<string> RunAsync()
    {
        // DaemonProcess starts this binary instead of the JIT build.
        Environment.SetEnvironmentVariable("APPHB_TEST_DAEMON", apphbd);
        await using var rig = await PairRig.CreateAsync();
        await ReplicationCrashTrials.StartPairAsync(rig);
        var report = await new ReplicationCrashTrials(rig, seed, line => Console.Error.WriteLine(line)).RunAsync(trials, CancellationToken.None);
        return $"""
            Two apphbd (keepalive 100 ms, deadtime 1 s, fence_apphb_netns) in namespaces, each replicating its directory over
            the dedicated link; a writer on the active node writes a file, waits for the barrier (AppHb.Client's
            SyncReplicationAsync), and counts the write confirmed; 0.3-2 s in, the active node is powered off or its apphbd
            killed; after the peer took over, every confirmed file is read there. The killed node is rebooted, resynced in
            reverse, and is the standby of the next trial. lsyncd + rsync lost 10-87 acknowledged writes per kill with
            delay = 1 and 49-787 by default (issue 14's reference, measured by its author at 100 writes/s, not in this run).
            {report}
            """;
    }
}
