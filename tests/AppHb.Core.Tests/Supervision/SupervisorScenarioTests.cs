using AppHb.Core.Supervision;

namespace AppHb.Core.Tests.Supervision;

/// <summary>Every recorded situation under Supervision/Scenarios replayed against the <see cref="SupervisorMachine"/>:
/// one test row per scenario, in milliseconds, with no process, socket or timer.</summary>
public class SupervisorScenarioTests
{
    private static readonly string Directory = Path.Combine(AppContext.BaseDirectory, "Supervision", "Scenarios");

    public static TheoryData<string> Scenarios => new(SupervisorScenario.Load(Directory).Select(s => s.Title));

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_replays_to_the_recorded_commands(string title)
    {
        var scenario = SupervisorScenario.Load(Directory).Single(s => s.Title == title);
        scenario.Run();
    }

    [Fact]
    public void The_tables_hold_at_least_thirty_situations_with_unique_titles()
    {
        var all = SupervisorScenario.Load(Directory).ToList();
        Assert.True(all.Count >= 30, $"only {all.Count} scenarios");
        Assert.Equal(all.Count, all.Select(s => s.Title).Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void A_scenario_that_expects_the_wrong_commands_fails_naming_its_line()
    {
        var scenario = SupervisorScenario.Parse([
            "=== wrong on purpose",
            "service db",
            "boot",
            "  launch db #1",
            "  event service-started db",
            "  event service-ready db",
            "exit db signal 9",
            "  event service-exited db",
        ], "inline");
        var failure = Assert.Throws<ScenarioFailure>(() => scenario.Single().Run());
        Assert.StartsWith("inline:7: after 'exit db signal 9' expected", failure.Message, StringComparison.Ordinal);
    }
}
