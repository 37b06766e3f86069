using AppHb.Core.Supervision;

namespace AppHb.Core.Tests;

public class ServiceGraphTests
{
    private static ServiceGraph Graph(params (string Name, string[] Requires)[] services) =>
        ServiceGraph.Build(services.ToDictionary(s => s.Name, s => (IReadOnlyList<string>)s.Requires));

    [Fact]
    public void A_chain_starts_in_dependency_order_and_stops_in_reverse()
    {
        // A <- B <- C: C requires B, B requires A.
        var graph = Graph(("c", ["b"]), ("a", []), ("b", ["a"]));
        Assert.Equal(["a", "b", "c"], graph.StartOrder);
        Assert.Equal(["c", "b", "a"], graph.StopOrder);
    }

    [Fact]
    public void Dependents_are_transitive_and_in_start_order()
    {
        var graph = Graph(("db", []), ("cache", []), ("api", ["db", "cache"]), ("web", ["api"]), ("batch", ["db"]), ("lone", []));
        Assert.Equal(["api", "batch", "web"], graph.DependentsOf("db"));
        Assert.Equal(["api", "web"], graph.DependentsOf("cache"));
        Assert.Empty(graph.DependentsOf("web"));
        Assert.Empty(graph.DependentsOf("lone"));
    }

    [Fact]
    public void Independent_services_start_by_name_so_every_node_agrees()
    {
        var graph = Graph(("zeta", []), ("alpha", []), ("mid", ["zeta"]));
        Assert.Equal(["alpha", "zeta", "mid"], graph.StartOrder);
    }

    [Fact]
    public void A_cycle_is_refused_with_its_path()
    {
        var e = Assert.Throws<ServiceGraphException>(() => Graph(("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", [])));
        Assert.Equal(["dependency cycle: a -> c -> b -> a"], e.Problems);
    }

    [Fact]
    public void Unknown_names_and_self_requirements_are_all_reported()
    {
        var e = Assert.Throws<ServiceGraphException>(() => Graph(("web", ["db", "web"]), ("api", ["cache"])));
        Assert.Contains("service 'api' requires 'cache', which is not defined (defined: api, web)", e.Problems);
        Assert.Contains("service 'web' requires 'db', which is not defined (defined: api, web)", e.Problems);
        Assert.Contains("service 'web' requires itself", e.Problems);
        Assert.Equal(3, e.Problems.Count);
    }
}

/// <summary>Recorded situations in, decisions out (the way Pacemaker's scheduler tests replay saved states). Each
/// step is "run N" (the service ran N ms then exited with code 1), "code N" (ran 50 ms, exited with N) or "wait N"
/// (stopped for N ms before the next start), under the default policy: immediate, backoff 100 ms doubling to 30 s
/// until a 10 s run, more than 5 restarts in 60 s give up, exit code 100 means stay stopped.</summary>
public class RestartTrackerScenarioTests
{
    public static TheoryData<string, string> Scenarios => new()
    {
        { "run 20000", "restart 0" },
        { "run 50 run 50 run 50", "restart 0, restart 100, restart 200" },
        { "run 50 run 50 run 50 run 50 run 50 run 50", "restart 0, restart 100, restart 200, restart 400, restart 800, give-up" },
        { "run 50 run 50 run 20000 run 50", "restart 0, restart 100, restart 0, restart 100" },
        { "run 50 run 50 wait 61000 run 50 run 50 run 50 run 50", "restart 0, restart 100, restart 200, restart 400, restart 800, restart 1600" },
        { "code 100", "stay" },
        { "run 50 code 100 run 50", "restart 0, stay, restart 100" },
    };

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_leads_to_the_expected_decisions(string script, string expected)
    {
        const long perMs = 1_000_000; // nanosecond timestamps
        var tracker = new RestartTracker(RestartPolicy.Default, 1_000_000_000);
        long now = 0;
        tracker.Started(now);
        var decisions = new List<string>();
        var steps = script.Split(' ');
        for (var i = 0; i < steps.Length; i += 2)
        {
            var value = long.Parse(steps[i + 1], System.Globalization.CultureInfo.InvariantCulture);
            if (steps[i] == "wait")
            {
                now += value * perMs;
                tracker.Started(now);
                continue;
            }

            var (ran, exit) = steps[i] == "run" ? (value, ProcessExit.Code(1)) : (50L, ProcessExit.Code((int)value));
            now += ran * perMs;
            var decision = tracker.Exited(exit, now);
            decisions.Add(decision switch
            {
                RestartDecision.Restart r => $"restart {r.After.TotalMilliseconds:0}",
                RestartDecision.StayStopped => "stay",
                RestartDecision.Escalate { Action: EscalationAction.GiveUp } => "give-up",
                RestartDecision.Escalate x => x.Action.ToString(),
                _ => "?",
            });
            if (decision is RestartDecision.Restart restart)
            {
                now += (long)(restart.After.TotalMilliseconds * perMs);
                tracker.Started(now);
            }
        }

        Assert.Equal(expected, string.Join(", ", decisions));
    }

    [Fact]
    public void Without_backoff_thousands_of_quick_restarts_stay_immediate()
    {
        // Found by the respawn benchmark (backoff: 0s, max-restarts: 1000000): after 1,025 restarts 2^n overflowed
        // to infinity, 0 x infinity is NaN, and the tracker threw instead of deciding.
        var policy = RestartPolicy.Default with { BackoffStep = TimeSpan.Zero, MaxRestarts = 1_000_000, Window = TimeSpan.FromSeconds(1) };
        var tracker = new RestartTracker(policy, 1000);
        long now = 0;
        for (var i = 0; i < 5000; i++)
        {
            tracker.Started(now);
            now += 1;
            Assert.Equal(TimeSpan.Zero, Assert.IsType<RestartDecision.Restart>(tracker.Exited(ProcessExit.KilledBy(9), now)).After);
        }
    }

    [Fact]
    public void Backoff_is_capped_and_escalation_names_what_happened()
    {
        var policy = RestartPolicy.Default with { MaxRestarts = 100, MaxDelay = TimeSpan.FromSeconds(1), Escalation = EscalationAction.Reboot };
        var tracker = new RestartTracker(policy, 1000);
        long now = 0;
        TimeSpan last = default;
        for (var i = 0; i < 12; i++)
        {
            tracker.Started(now);
            now += 10;
            last = Assert.IsType<RestartDecision.Restart>(tracker.Exited(ProcessExit.KilledBy(9), now)).After;
            now += (long)last.TotalMilliseconds;
        }

        Assert.Equal(TimeSpan.FromSeconds(1), last);
        var strict = new RestartTracker(policy with { MaxRestarts = 0 }, 1000);
        strict.Started(0);
        var escalate = Assert.IsType<RestartDecision.Escalate>(strict.Exited(ProcessExit.KilledBy(9), 5));
        Assert.Equal(EscalationAction.Reboot, escalate.Action);
        Assert.Contains("signal 9 (SIGKILL) after 0 restarts within 60 s (limit 0)", escalate.Reason, StringComparison.Ordinal);
    }
}
