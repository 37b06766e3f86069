using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>The short version of the randomized partition checker (the benchmarks run it for a thousand trials):
/// random faults on two real apphbd while a checker samples both nodes every 5 ms.</summary>
public sealed class PartitionCheckerTests
{
    [Fact]
    public async Task Random_faults_never_leave_two_nodes_serving_and_the_pair_serves_again_after_each()
    {
        await using var rig = await PairRig.CreateAsync();
        await PartitionTrials.StartPairAsync(rig);
        var seed = Random.Shared.Next();
        var log = new List<string>();
        var report = await new PartitionTrials(rig, seed, log.Add).RunAsync(8, TestContext.Current.CancellationToken);

        Assert.True(report.Violations.Count == 0, $"{report}\n{string.Join('\n', log)}");
        Assert.Equal(8, report.ConvergenceSeconds.Count);
        Assert.True(report.Samples > 100, report.ToString());
    }
}
