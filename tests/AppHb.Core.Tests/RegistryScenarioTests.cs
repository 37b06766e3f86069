namespace AppHb.Core.Tests;

/// <summary>Recorded situations in, expected events out: each row is a script of steps on one client
/// (interval 1000 ms, warn 400 ms) and the events it must raise, in order.</summary>
public class RegistryScenarioTests
{
    public static TheoryData<string, string> Scenarios => new()
    {
        // script: "b" = beat, "wN" = let N ms pass; expected: event kinds in order
        { "w1000", "registered warn hung" },
        { "w399 b w399 b w399 b", "registered" },
        { "w400 b", "registered warn recovered" },
        { "w1000 b w1000", "registered warn hung recovered warn hung" },
        { "w1000 b b b b", "registered warn hung recovered" },
        { "w399 b w400", "registered warn" },
        { "w5000 w5000 b w300", "registered warn hung recovered" },
    };

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_raises_exactly_the_expected_events(string script, string expected)
    {
        var h = new RegistryHarness();
        var c = h.Register("svc", 1000, 400);
        foreach (var step in script.Split(' '))
        {
            if (step == "b")
            {
                h.Registry.Beat(c);
            }
            else
            {
                h.RunMs(int.Parse(step[1..], System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        Assert.Equal(expected, string.Join(' ', h.Drain().Select(e => e.Split(':')[0])));
    }
}
