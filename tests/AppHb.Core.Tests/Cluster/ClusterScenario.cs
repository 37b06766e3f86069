using System.Globalization;
using AppHb.Core.Cluster;
using AppHb.Core.Tests.Supervision;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Core.Tests.Cluster;

/// <summary>A recorded situation for one node's <see cref="FailoverMachine"/>, replayed under a fake clock: the peer's
/// heartbeats per link, faults and answers in, the exact commands out. One scenario per <c>=== title</c> block:
/// <code>
/// node ID [preferred] [keepalive=200ms] [warntime=..] [deadtime=..] [initdead=..] [hold=..] [fence-delay=..]
///         [fence-retry=..] [failback=..] [generations=3@1,2@1]     (links: "dedicated" and "lan")
/// peer ROLE [gen=3@1,2@1] [ping=yes|no] [held=yes|no] [hears=yes|no]     what the peer's heartbeats say from here on
/// INPUT   heard LINK... | beat 2s [LINK...] (heard on the links, both by default, every keepalive for 2 s)
///         | after 2s | paused 2s (no deadline runs, then one late wake) | ping ok|lost | fence ok|failed | group stopped | peer-released [before-report] | peer-leaving | peer-restarted | port-closed LINK... | fenced-by-peer | caught-up [G] (the peer's current generation by default)
///         | release-requested | switchover | failback | standby | unstandby | resolve survivor|loser
///   COMMAND  every command the input produced, in order; time-driven ones as "+Nms COMMAND" from the step's start;
///            an operator request's refusal as "refused: TEXT"
/// ? role ROLE | ? stale yes|no | ? split-brain yes|no | ? generation G
/// </code>
/// Writing new rows: with RECORD_SCENARIO=FILE set, the runner appends what the machine did to FILE instead of
/// comparing; every recorded line is read and judged before it goes into a table.</summary>
internal sealed class ClusterScenario
{
    private readonly List<(string Input, List<string> Expected, string Where)> _steps = [];
    private string _node = string.Empty;

    private ClusterScenario(string title, string source)
    {
        Title = title;
        Source = source;
    }

    public string Title { get; }

    public string Source { get; }

    public override string ToString() => Title;

    public static IEnumerable<ClusterScenario> Load(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*.scenario").Order(StringComparer.Ordinal))
        {
            foreach (var scenario in Parse(File.ReadAllLines(file), Path.GetFileName(file)))
            {
                yield return scenario;
            }
        }
    }

    public static List<ClusterScenario> Parse(IReadOnlyList<string> lines, string file)
    {
        var scenarios = new List<ClusterScenario>();
        ClusterScenario? current = null;
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            var where = $"{file}:{i + 1}";
            if (line.StartsWith("=== ", StringComparison.Ordinal))
            {
                current = new ClusterScenario(line[4..].Trim(), where);
                scenarios.Add(current);
                continue;
            }

            if (line.TrimStart().StartsWith('#') || line.Trim().Length == 0)
            {
                continue;
            }

            if (current is null)
            {
                throw new FormatException($"{where}: a line before the first '=== title'");
            }

            if (line.StartsWith("node ", StringComparison.Ordinal))
            {
                current._node = line;
            }
            else if (line.StartsWith("  ", StringComparison.Ordinal))
            {
                if (current._steps.Count == 0)
                {
                    throw new FormatException($"{where}: an expected command before any input");
                }

                current._steps[^1].Expected.Add(line.Trim());
            }
            else
            {
                current._steps.Add((line.Trim(), [], where));
            }
        }

        return scenarios;
    }

    public void Run()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 0, 0, 0, TimeSpan.Zero));
        var words = _node.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length < 2)
        {
            throw new FormatException($"{Source}: no 'node ID' line");
        }

        var timings = ClusterTimings.Default;
        var preferred = false;
        var generations = new List<DataGeneration>();
        foreach (var option in words.Skip(2))
        {
            var (key, value) = option.Split('=', 2) is [var k, var v] ? (k, v) : (option, string.Empty);
            timings = key switch
            {
                "preferred" => timings,
                "keepalive" => timings with { Keepalive = Span(value) },
                "warntime" => timings with { WarnTime = Span(value) },
                "deadtime" => timings with { DeadTime = Span(value) },
                "initdead" => timings with { InitDead = Span(value) },
                "hold" => timings with { LinkHold = Span(value) },
                "fence-delay" => timings with { FenceDelay = Span(value) },
                "fence-retry" => timings with { FenceRetry = Span(value) },
                "failback" => timings with { FailbackDelay = Span(value) },
                "generations" => timings,
                _ => throw new FormatException($"{Source}: unknown node option '{option}'"),
            };
            preferred |= key == "preferred";
            if (key == "generations")
            {
                generations.AddRange(value.Split(',').Select(Generation));
            }
        }

        var machine = new FailoverMachine(clock, timings, ushort.Parse(words[1], CultureInfo.InvariantCulture), preferred,
            [("dedicated", LinkKind.Dedicated), ("lan", LinkKind.Lan)], new GenerationHistory(generations));
        var peer = new PeerReport(ClusterRole.Standby, [DataGeneration.None], true);
        foreach (var (input, expected, where) in _steps)
        {
            var actual = new List<string>();
            var parts = input.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            try
            {
                switch (parts[0])
                {
                    case "?":
                        Check(machine, parts, where);
                        continue;
                    case "peer":
                        peer = new PeerReport(Role(parts[1]),
                            Option(parts, "gen") is { } gen ? [.. gen.Split(',').Select(Generation)] : peer.Generations,
                            Option(parts, "ping") is { } ping ? ping == "yes" : peer.ReachesPingTargets,
                            Option(parts, "held") is { } held ? held == "yes" : peer.HeldStandby,
                            Option(parts, "hears") is { } hears ? hears == "yes" : peer.HearsThisNode);
                        break;
                    case "heard":
                        foreach (var link in parts.Skip(1))
                        {
                            machine.Heard(link, peer);
                        }

                        break;
                    case "beat":
                    {
                        var links = parts.Length > 2 ? parts[2..] : ["dedicated", "lan"];
                        var start = clock.GetTimestamp();
                        var end = start + Ticks(clock, Span(parts[1]));
                        while (true)
                        {
                            var next = clock.GetTimestamp() + Ticks(clock, timings.Keepalive);
                            if (next > end)
                            {
                                break;
                            }

                            actual.AddRange(Advance(machine, clock, start, next));
                            foreach (var link in links)
                            {
                                machine.Heard(link, peer);
                            }

                            actual.AddRange(Drain(machine, clock, start, stamped: true));
                        }

                        actual.AddRange(Advance(machine, clock, start, end));
                        break;
                    }

                    case "after":
                    {
                        var start = clock.GetTimestamp();
                        actual.AddRange(Advance(machine, clock, start, start + Ticks(clock, Span(parts[1]))));
                        break;
                    }

                    case "paused":
                        // The process did not run (SIGSTOP): time passes without the machine's deadlines, then it wakes once.
                        clock.Advance(Span(parts[1]));
                        machine.ExpireDue();
                        break;
                    case "ping":
                        machine.PingTargets(parts[1] == "ok");
                        break;
                    case "fence":
                        machine.FenceCompleted(parts[1] == "ok", parts[1] == "ok" ? "test agent: off" : "test agent: timed out");
                        break;
                    case "group":
                        machine.GroupStopped();
                        break;
                    case "peer-released":
                        machine.PeerReleased(sentBeforeLatestReport: parts.Length > 1 && parts[1] == "before-report");
                        break;
                    case "peer-restarted":
                        machine.PeerRestarted();
                        break;
                    case "port-closed":
                        foreach (var link in parts.Skip(1))
                        {
                            machine.PeerPortClosed(link);
                        }

                        break;
                    case "fenced-by-peer":
                        machine.FencedByPeer("test");
                        break;
                    case "peer-leaving":
                        machine.PeerLeaving();
                        break;
                    case "caught-up":
                        machine.CaughtUp(parts.Length > 1 ? Generation(parts[1]) : peer.CurrentGeneration);
                        break;
                    case "release-requested":
                        Refused(actual, machine.ReleaseRequested("test"));
                        break;
                    case "switchover":
                        Refused(actual, machine.Switchover());
                        break;
                    case "failback":
                        Refused(actual, machine.Failback());
                        break;
                    case "standby":
                        Refused(actual, machine.Standby(true));
                        break;
                    case "unstandby":
                        Refused(actual, machine.Standby(false));
                        break;
                    case "resolve":
                        Refused(actual, machine.Resolve(parts[1] == "survivor"));
                        break;
                    default:
                        throw new FormatException($"{where}: unknown input '{input}'");
                }
            }
            catch (FormatException)
            {
                throw;
            }

            if (parts[0] != "beat" && parts[0] != "after")
            {
                actual.AddRange(Drain(machine, clock, clock.GetTimestamp(), stamped: false));
            }

            if (Environment.GetEnvironmentVariable("RECORD_SCENARIO") is { } record)
            {
                File.AppendAllLines(record, [$"{where} {input}", .. actual.Select(a => "  " + a)]);
                continue;
            }

            if (!actual.SequenceEqual(expected))
            {
                var want = expected.Count == 0 ? "  (nothing)" : string.Join('\n', expected.Select(e => "  " + e));
                var got = actual.Count == 0 ? "  (nothing)" : string.Join('\n', actual.Select(a => "  " + a));
                throw new ScenarioFailure($"{where}: after '{input}' expected\n{want}\nbut the machine asked for\n{got}");
            }
        }
    }

    private static void Refused(List<string> actual, string? refusal)
    {
        if (refusal is not null)
        {
            actual.Add($"refused: {refusal}");
        }
    }

    private static void Check(FailoverMachine machine, string[] parts, string where)
    {
        var (actual, expected) = parts[1] switch
        {
            "role" => (machine.Role.ToString().ToLowerInvariant(), parts[2]),
            "stale" => (machine.IsStale ? "yes" : "no", parts[2]),
            "split-brain" => (machine.IsSplitBrain ? "yes" : "no", parts[2]),
            "generation" => (machine.Generations.Current.ToString(), parts[2]),
            _ => throw new FormatException($"{where}: unknown assertion '{string.Join(' ', parts)}'"),
        };
        if (actual != expected)
        {
            throw new ScenarioFailure($"{where}: {parts[1]} is {actual}, expected {expected}");
        }
    }

    /// <summary>Moves the clock to <paramref name="end"/>, stopping at every deadline the machine names.</summary>
    private static List<string> Advance(FailoverMachine machine, FakeTimeProvider clock, long start, long end)
    {
        var lines = new List<string>();
        while (true)
        {
            var now = clock.GetTimestamp();
            var next = machine.NextDue;
            if (next > end)
            {
                clock.Advance(TimeSpan.FromSeconds((double)(end - now) / clock.TimestampFrequency));
                return lines;
            }

            if (next > now)
            {
                clock.Advance(TimeSpan.FromSeconds((double)(next - now) / clock.TimestampFrequency));
            }

            machine.ExpireDue();
            lines.AddRange(Drain(machine, clock, start, stamped: true));
            if (machine.NextDue <= clock.GetTimestamp())
            {
                throw new ScenarioFailure("the machine names a deadline that ExpireDue does not clear");
            }
        }
    }

    private static List<string> Drain(FailoverMachine machine, FakeTimeProvider clock, long start, bool stamped)
    {
        var offset = (clock.GetTimestamp() - start) * 1000.0 / clock.TimestampFrequency;
        var lines = new List<string>();
        while (machine.TryTakeCommand(out var command))
        {
            lines.Add(stamped ? $"+{offset:0}ms {command}" : command.ToString()!);
        }

        return lines;
    }

    private static string? Option(string[] parts, string key) =>
        parts.FirstOrDefault(p => p.StartsWith(key + "=", StringComparison.Ordinal))?[(key.Length + 1)..];

    private static ClusterRole Role(string text) => Enum.Parse<ClusterRole>(text.Replace("-", string.Empty, StringComparison.Ordinal), ignoreCase: true);

    private static DataGeneration Generation(string text)
    {
        var at = text.Split('@');
        return new DataGeneration(ulong.Parse(at[0], CultureInfo.InvariantCulture), ushort.Parse(at[1], CultureInfo.InvariantCulture));
    }

    private static long Ticks(FakeTimeProvider clock, TimeSpan span) => (long)(span.TotalSeconds * clock.TimestampFrequency);

    private static TimeSpan Span(string text) => text.EndsWith("ms", StringComparison.Ordinal)
        ? TimeSpan.FromMilliseconds(double.Parse(text[..^2], CultureInfo.InvariantCulture))
        : TimeSpan.FromSeconds(double.Parse(text[..^1], CultureInfo.InvariantCulture));
}
