using AppHb.Core.Cluster;
using AppHb.Core.Tests.Supervision;

namespace AppHb.Core.Tests.Cluster;

/// <summary>Every recorded situation under Cluster/Scenarios replayed against one node's <see cref="FailoverMachine"/>
/// under a fake clock.</summary>
public class ClusterScenarioTests
{
    private static readonly string Directory = Path.Combine(AppContext.BaseDirectory, "Cluster", "Scenarios");

    public static TheoryData<string> Scenarios => new(ClusterScenario.Load(Directory).Select(s => s.Title));

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_replays_to_the_recorded_commands(string title) =>
        ClusterScenario.Load(Directory).Single(s => s.Title == title).Run();

    [Fact]
    public void A_scenario_that_expects_the_wrong_commands_fails_naming_its_line()
    {
        var scenario = ClusterScenario.Parse([
            "=== wrong on purpose",
            "node 2",
            "peer active gen=1@1",
            "heard dedicated lan",
            "  event standby",
        ], "inline");
        var failure = Assert.Throws<ScenarioFailure>(() => scenario.Single().Run());
        Assert.StartsWith("inline:4: after 'heard dedicated lan' expected", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "1@1" }, new[] { "1@1" }, GenerationRelation.Same)]
    [InlineData(new[] { "1@1" }, new[] { "2@2", "1@1" }, GenerationRelation.PeerNewer)]
    [InlineData(new[] { "3@1", "2@2", "1@1" }, new[] { "2@2", "1@1" }, GenerationRelation.PeerOlder)]
    [InlineData(new[] { "2@1", "1@1" }, new[] { "2@2", "1@1" }, GenerationRelation.Diverged)]
    [InlineData(new[] { "0@0" }, new[] { "9@2" }, GenerationRelation.PeerNewer)]
    [InlineData(new[] { "9@2" }, new[] { "0@0" }, GenerationRelation.PeerOlder)]
    public void Generations_compare_by_history_not_by_number(string[] mine, string[] peers, GenerationRelation expected)
    {
        static DataGeneration Parse(string g) => new(ulong.Parse(g.Split('@')[0], System.Globalization.CultureInfo.InvariantCulture), ushort.Parse(g.Split('@')[1], System.Globalization.CultureInfo.InvariantCulture));
        var history = new GenerationHistory(mine.Select(Parse));
        Assert.Equal(expected, history.CompareWith([.. peers.Select(Parse)]));
    }

    [Fact]
    public void A_node_that_missed_more_takeovers_than_the_history_holds_is_judged_diverged()
    {
        var peer = new GenerationHistory([new DataGeneration(1, 1)]);
        for (var i = 0; i < GenerationHistory.Capacity; i++)
        {
            peer.Advance(2, DataGeneration.None);
        }

        Assert.Equal(GenerationRelation.Diverged, new GenerationHistory([new DataGeneration(1, 1)]).CompareWith(peer.NewestFirst));
    }

    [Fact]
    public void Timings_that_cannot_work_are_refused_with_the_reason()
    {
        var timings = ClusterTimings.Default with { Keepalive = TimeSpan.FromSeconds(1), DeadTime = TimeSpan.FromMilliseconds(1500) };
        Assert.Contains("at least twice keepalive", timings.Validate(), StringComparison.Ordinal);
        Assert.Null(ClusterTimings.Default.Validate());
    }
}
