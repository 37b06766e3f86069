using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace AppHb.Testing;

/// <summary>The randomized partition checker (issue 13): trial after trial, one or two random faults (either link
/// cut, a node's LAN port cut, a node's apphbd killed or frozen, a node powered off) at random moments, held a random
/// time, then healed (a killed or powered-off node is reset), while a <see cref="PairChecker"/> samples both nodes
/// every few milliseconds. The properties: never two nodes holding the service IP or running the group at once; once
/// the faults stop, exactly one node holds the IP, runs the group and answers the client within
/// <see cref="ConvergenceBound"/>.</summary>
public sealed class PartitionTrials(PairRig rig, int seed, Action<string>? progress = null)
{
    /// <summary>How long after the faults stop the pair must serve again: a reset node's apphbd start, deadtime, a
    /// fence and the group's start, with room for a busy machine.</summary>
    public static readonly TimeSpan ConvergenceBound = TimeSpan.FromSeconds(30);

    private readonly Random _random = new(seed);
    private readonly Dictionary<string, int> _faults = [];
    private readonly List<double> _convergence = [];
    private readonly List<double> _healthy = [];
    private readonly List<string> _failures = [];
    private int _trials;

    public static string[] FaultKinds { get; } = ["cut dedicated link", "cut LAN between the nodes", "cut a node's LAN port", "kill a node's apphbd", "freeze a node's apphbd", "power a node off"];

    /// <summary>Starts both nodes (the preferred one active) for trials.</summary>
    public static async Task StartPairAsync(PairRig rig, string deadtime = "1s")
    {
        ArgumentNullException.ThrowIfNull(rig);
        foreach (var me in new[] { 1, 2 })
        {
            // The active node fences after deadtime less the fence delay, the standby after deadtime: the delay
            // outlasts a fence (well under 0.1 s), so when both links are cut the active node wins. A returning link
            // counts after 1 s instead of the default 5 s: still ten heartbeats, and each trial waits for both links
            // to count again, so the checker runs about twice the trials in the same time.
            await rig.StartAsync(me, rig.Config(me, rig.Answering(me), fenceDelay: "600ms", deadtime: deadtime, linkHold: "1s"));
        }
    }

    /// <summary>Runs <paramref name="count"/> trials with the checker watching; returns the report.</summary>
    public async Task<PartitionReport> RunAsync(int count, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        await using (var checker = new PairChecker(rig, TimeSpan.FromMilliseconds(5)))
        {
            if (await ConvergeAsync(cancellationToken) is null)
            {
                _failures.Add("the pair never served before the first trial");
            }

            for (var i = 0; i < count && !cancellationToken.IsCancellationRequested; i++)
            {
                await TrialAsync(i + 1, checker, cancellationToken);
            }

            return new PartitionReport(seed, _trials, new Dictionary<string, int>(_faults), [.. _convergence], [.. _healthy],
                [.. checker.Violations, .. _failures], checker.Samples, watch.Elapsed);
        }
    }

    private async Task TrialAsync(int number, PairChecker checker, CancellationToken cancellationToken)
    {
        var violationsBefore = checker.Violations.Count;
        _trials++;
        var chosen = Enumerable.Range(0, _random.Next(1, 3)).Select(_ => (Kind: _random.Next(FaultKinds.Length), Node: _random.Next(1, 3))).ToList();
        var frozen = new List<int>();
        var logFrom = new[] { 0, rig.Daemon(1)!.Lines.Count, rig.Daemon(2)!.Lines.Count };
        var story = new StringBuilder().Append(CultureInfo.InvariantCulture, $"trial {number}:");
        foreach (var (kind, node) in chosen)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_random.Next(0, 1000)), cancellationToken);
            var name = FaultKinds[kind];
            _faults[name] = _faults.GetValueOrDefault(name) + 1;
            story.Append(CultureInfo.InvariantCulture, $" {name}{(kind >= 2 ? $" (node{node})" : string.Empty)};");
            switch (kind)
            {
                case 0:
                    await rig.CutDedicatedAsync(true);
                    break;
                case 1:
                    await rig.CutLanBetweenAsync(true);
                    break;
                case 2:
                    await rig.CutLanPortAsync(node, true);
                    break;
                case 3:
                    _ = ProcessRunner.Signal(rig.Daemon(node)!.Pid, 9);
                    break;
                case 4:
                    _ = ProcessRunner.Signal(rig.Daemon(node)!.Pid, 19);
                    frozen.Add(node);
                    break;
                default:
                    await rig.PowerOffAsync(node);
                    break;
            }
        }

        var held = TimeSpan.FromMilliseconds(_random.Next(500, 4000));
        story.Append(CultureInfo.InvariantCulture, $" held {held.TotalSeconds:0.0} s");
        await Task.Delay(held, cancellationToken);

        // Heal: thaw, reconnect, then reset every node whose apphbd is gone (killed, powered off, or fenced meanwhile).
        foreach (var node in frozen)
        {
            _ = ProcessRunner.Signal(rig.Daemon(node)!.Pid, 18);
        }

        await rig.CutDedicatedAsync(false);
        await rig.CutLanBetweenAsync(false);
        await rig.CutLanPortAsync(1, false);
        await rig.CutLanPortAsync(2, false);
        foreach (var node in new[] { 1, 2 })
        {
            if (rig.Daemon(node) is { IsRunning: false })
            {
                story.Append(CultureInfo.InvariantCulture, $" reset node{node};");
            }
        }

        string Decisions() => string.Join('\n', new[] { 1, 2 }.SelectMany(n => rig.Daemon(n)!.Lines.Skip(logFrom[n])
            .Where(l => l.Contains("Pair:", StringComparison.Ordinal) || l.Contains("apphbd 0.", StringComparison.Ordinal))
            .Select(l => $"    node{n} {l}")));
        var converged = await ConvergeAsync(cancellationToken);
        if (checker.Violations.Count > violationsBefore)
        {
            // Which trial broke the property, and what both nodes decided during it.
            _failures.Add($"{story}: {string.Join("; ", checker.Violations.Skip(violationsBefore))}\n{Decisions()}");
            progress?.Invoke(_failures[^1]);
        }

        if (converged is { } done)
        {
            _convergence.Add(done.Serving.TotalSeconds);
            _healthy.Add(done.Healthy.TotalSeconds);
            progress?.Invoke($"{story} -> node{done.Node} serves {done.Serving.TotalSeconds:0.00} s after the heal, both healthy after {done.Healthy.TotalSeconds:0.0} s");
        }
        else
        {
            // What both nodes decided during the trial, to tell why.
            _failures.Add($"{story}: no single node served within {ConvergenceBound.TotalSeconds:0} s of the heal\n{Decisions()}");
            progress?.Invoke(_failures[^1]);
            // A split brain holds until an operator names the survivor: do as one would, so that the next trials
            // start from a serving pair again instead of all failing for this one.
            if (await ResolveSplitBrainAsync())
            {
                progress?.Invoke($"trial {number}: split brain resolved with node1 as the survivor");
                await ConvergeAsync(cancellationToken);
            }
        }
    }

    /// <summary>What `apphbctl cluster resolve --survivor node1` does, on each node reporting a split brain; whether
    /// there was one.</summary>
    private async Task<bool> ResolveSplitBrainAsync()
    {
        var found = false;
        foreach (var node in new[] { 1, 2 })
        {
            try
            {
                var control = new AppHb.Client.AppHbControl(rig.Daemon(node)!.SocketPath);
                if ((await control.GetStatusAsync()).Cluster is { SplitBrain: true })
                {
                    found = true;
                    await control.ControlAsync(AppHb.Protocol.ControlAction.Resolve, "node1", 0, CancellationToken.None);
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or AppHb.Client.AppHbException)
            {
                // Down or refusing: the next look resets it or asks again.
            }
        }

        return found;
    }

    private async Task RebootAsync(int node)
    {
        try
        {
            await rig.RebootAsync(node);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("apphbd exited", StringComparison.Ordinal))
        {
            // Fenced again while starting; the next look finds it down and resets it again.
        }
    }

    /// <summary>Waits until exactly one node holds the service IP and answers the client (serving), then until both
    /// apphbd hear each other on both links (healthy: the next trial starts from a healthy pair). The serving node and
    /// the two times since the start of the wait, or null when either did not happen within the bound.</summary>
    private async Task<(int Node, TimeSpan Serving, TimeSpan Healthy)?> ConvergeAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        TimeSpan? serving = null;
        while (deadline.Elapsed < ConvergenceBound)
        {
            var holds1 = await rig.HoldsServiceIpAsync(1);
            var holds2 = await rig.HoldsServiceIpAsync(2);
            if (holds1 != holds2 && await rig.AnswerOnServiceIpAsync() is { } answer && answer == (holds1 ? "node1" : "node2"))
            {
                serving ??= deadline.Elapsed;
                if (await BothHealthyAsync())
                {
                    return (holds1 ? 1 : 2, serving.Value, deadline.Elapsed);
                }
            }
            else
            {
                serving = null;
            }

            // Reset what is down (killed, powered off, fenced meanwhile; or fenced again while it started, by a fence
            // of its peer still under way): like an operator, power it on again.
            foreach (var node in new[] { 1, 2 })
            {
                if (rig.Daemon(node) is { IsRunning: false })
                {
                    await RebootAsync(node);
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
        }

        return null;
    }

    private async Task<bool> BothHealthyAsync()
    {
        foreach (var node in new[] { 1, 2 })
        {
            try
            {
                var status = await new AppHb.Client.AppHbControl(rig.Daemon(node)!.SocketPath).GetStatusAsync();
                if (status.Cluster is not { PeerRole: not null } pair || pair.Links.Any(l => l.State != "up"))
                {
                    return false;
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or AppHb.Client.AppHbException)
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>What the partition checker found.</summary>
/// <param name="ConvergenceSeconds">Per trial, from the heal until one node serves the client (0 when it never stopped).</param>
/// <param name="HealthySeconds">Per trial, from the heal until both nodes hear each other on both links again.</param>
public sealed record PartitionReport(int Seed, int Trials, IReadOnlyDictionary<string, int> Faults, IReadOnlyList<double> ConvergenceSeconds,
    IReadOnlyList<double> HealthySeconds, IReadOnlyList<string> Violations, long Samples, TimeSpan Elapsed)
{
    public override string ToString()
    {
        var text = new StringBuilder();
        static string Spread(IReadOnlyList<double> values)
        {
            var sorted = values.Order().ToArray();
            double At(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
            return string.Create(CultureInfo.InvariantCulture, $"p50 {At(0.5):0.00}, p99 {At(0.99):0.00}, max {(sorted.Length == 0 ? double.NaN : sorted[^1]):0.00}");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"trials {Trials} (seed {Seed}), {Elapsed.TotalMinutes:0.0} min, {Samples} samples of the group's processes");
        text.AppendLine(CultureInfo.InvariantCulture, $"faults: {string.Join(", ", Faults.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => $"{f.Key} {f.Value}"))}");
        text.AppendLine(CultureInfo.InvariantCulture, $"one node serving the client after the heal (s): {Spread(ConvergenceSeconds)}");
        text.AppendLine(CultureInfo.InvariantCulture, $"both nodes healthy again after the heal (s; a reset node's start and the links' hold time): {Spread(HealthySeconds)}");
        text.AppendLine(CultureInfo.InvariantCulture, $"violations: {Violations.Count}");
        foreach (var violation in Violations)
        {
            text.AppendLine("  " + violation);
        }

        return text.ToString();
    }
}
