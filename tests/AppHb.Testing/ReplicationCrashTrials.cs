using System.Diagnostics;
using System.Globalization;
using System.Text;
using AppHb.Client;
using AppHb.Protocol;

namespace AppHb.Testing;

/// <summary>Issue 14's crash trials: a writer on the active node writes file after file, each confirmed by the
/// replication barrier (<see cref="AppHbControl.SyncReplicationAsync"/>) before the next, as an application
/// acknowledges its users; at a random moment the active node is powered off or its apphbd killed; the peer fences it
/// and takes over; then every confirmed write must be on the new active node, byte for byte. The killed node is
/// rebooted, resynced in reverse, and is the standby of the next trial (so the roles alternate).
/// <para>With <see cref="PacedWritesPerSecond"/> the writer does not call the barrier: it writes at that rate and
/// counts each write acknowledged once written, as an application of an asynchronous replica (or of lsyncd) does; the
/// trials then count how many acknowledged writes the crash lost instead of failing on the first.</para></summary>
public sealed class ReplicationCrashTrials(PairRig rig, int seed, Action<string>? progress = null)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private readonly Random _random = new(seed);
    private readonly List<string> _failures = [];
    private readonly List<double> _takeovers = [];
    private readonly List<double> _barriers = [];
    private long _confirmed;
    private long _missing;
    private long _unconfirmedPresent;
    private readonly List<int> _lostPerTrial = [];
    /// <summary>When the trial's crash began (a timestamp; 0 before it).</summary>
    private long _crashedAt;
    private int _trials;

    /// <summary>0: every write waits for the barrier (nothing acknowledged may be lost). Otherwise the writes per
    /// second of a writer that never waits (its losses are counted, not failed).</summary>
    public int PacedWritesPerSecond { get; init; }

    /// <summary>Begins every written file's name: trials of another run on the same pair must not meet this one's files.</summary>
    public string Label { get; init; } = "t";

    /// <summary>When, after the writer starts, the active node dies: uniformly in [Min, Max) ms.</summary>
    public (int Min, int Max) CrashAfterMilliseconds { get; init; } = (300, 2000);

    /// <summary>The node's replicated directory (each node its own path: both share this machine's filesystem, unless
    /// <see cref="StandbyDirectoryVariable"/> puts node 2's elsewhere).</summary>
    public static string Data(PairRig rig, int me) => Path.Combine(NodeDirectory(rig, me), $"data{me}");

    /// <summary>An environment variable naming a directory on another filesystem (another disk, or tmpfs) for node
    /// 2's replicated directory, replica state and journal: a pair of appliances has a disk each, and this machine
    /// one, whose syncs both nodes otherwise share (a benchmark's option, `--standby-dir`).</summary>
    public const string StandbyDirectoryVariable = "APPHB_BENCH_STANDBY_DIR";

    private static string NodeDirectory(PairRig rig, int me)
    {
        ArgumentNullException.ThrowIfNull(rig);
        return me == 2 && Environment.GetEnvironmentVariable(StandbyDirectoryVariable) is { Length: > 0 } elsewhere
            ? Directory.CreateDirectory(Path.Combine(elsewhere, Path.GetFileName(rig.Directory))).FullName
            : rig.Directory;
    }

    /// <summary>Starts both nodes with replication of <see cref="Data"/> (the preferred node active).</summary>
    public static async Task StartPairAsync(PairRig rig)
    {
        ArgumentNullException.ThrowIfNull(rig);
        foreach (var me in new[] { 1, 2 })
        {
            Directory.CreateDirectory(Path.Combine(Data(rig, me), "w"));
            await rig.StartAsync(me, rig.Config(me, "command: [/bin/sleep, \"1000\"]", linkHold: "1s", extra: $"""
                replication:
                  path: {Data(rig, me)}
                  journal: {Path.Combine(NodeDirectory(rig, me), $"node{me}.journal")}
                  barrier-timeout: 5s
                """));
        }
    }

    public async Task<ReplicationCrashReport> RunAsync(int count, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        for (var i = 1; i <= count && !cancellationToken.IsCancellationRequested; i++)
        {
            await TrialAsync(i, cancellationToken);
        }

        return new ReplicationCrashReport(seed, _trials, _confirmed, _missing, _unconfirmedPresent, [.. _takeovers], [.. _barriers], [.. _failures], watch.Elapsed)
        {
            PacedWritesPerSecond = PacedWritesPerSecond,
            LostPerTrial = [.. _lostPerTrial],
        };
    }

    private async Task TrialAsync(int number, CancellationToken cancellationToken)
    {
        _trials++;
        if (await SteadyAsync(cancellationToken) is not { } active)
        {
            Fail(number, "the pair never reached an active source and a caught-up replica", 1, 2);
            return;
        }

        var standby = 3 - active;
        var powerOff = _random.Next(2) == 0;
        var crashAfter = TimeSpan.FromMilliseconds(_random.Next(CrashAfterMilliseconds.Min, CrashAfterMilliseconds.Max));
        var confirmed = new List<string>();
        var written = new List<string>();
        Interlocked.Exchange(ref _crashedAt, 0);
        using var stopWriter = new CancellationTokenSource();
        var writer = WriteAsync(active, number, confirmed, written, stopWriter.Token);
        await Task.Delay(crashAfter, cancellationToken);
        Interlocked.Exchange(ref _crashedAt, Stopwatch.GetTimestamp());
        var crashed = Stopwatch.StartNew();
        if (powerOff)
        {
            await rig.PowerOffAsync(active);
        }
        else
        {
            ProcessRunner.Signal(rig.Daemon(active)!.Pid, 9);
        }

        // The writer stops at its first unconfirmed write (apphbd gone, or the barrier timed out).
        if (await Task.WhenAny(writer, Task.Delay(Bound, cancellationToken)) != writer)
        {
            await stopWriter.CancelAsync();
        }

        await writer;
        if (!await Polling.UntilAsync(async () => await StatusAsync(standby) is { Cluster.Role: "active", Replication.Side: "source" }, Bound, cancellationToken))
        {
            Fail(number, $"node{standby} never took over after node{active} was {(powerOff ? "powered off" : "killed")}", active, standby);
            await RebootAsync(active);
            return;
        }

        _takeovers.Add(crashed.Elapsed.TotalSeconds);
        var missing = confirmed.Where(name => Content(standby, name) != Expected(name)).ToList();
        var present = written.Except(confirmed, StringComparer.Ordinal).Count(name => Content(standby, name) == Expected(name));
        _confirmed += confirmed.Count;
        _missing += missing.Count;
        _unconfirmedPresent += present;
        _lostPerTrial.Add(missing.Count);
        var story = string.Create(CultureInfo.InvariantCulture,
            $"trial {number}: node{active} {(powerOff ? "powered off" : "apphbd killed")} after {crashAfter.TotalSeconds:0.0} s; {confirmed.Count} writes {(PacedWritesPerSecond > 0 ? "acknowledged (written, no barrier)" : "confirmed")}, {missing.Count} of them missing on node{standby}; {present} of {written.Count - confirmed.Count} unconfirmed there anyway; took over in {crashed.Elapsed.TotalSeconds:0.0} s");
        progress?.Invoke(story);
        if (missing.Count > 0 && PacedWritesPerSecond == 0)
        {
            Fail(number, $"{story}: missing {string.Join(", ", missing.Take(10))}", active, standby);
        }
        else if (confirmed.Count == 0)
        {
            Fail(number, $"{story}: no write was confirmed, so the trial proved nothing", active, standby);
        }

        await RebootAsync(active);
    }

    /// <summary>One write after another into the active node's directory, each followed by the barrier; stops at the
    /// first barrier that fails. Paced: one write every 1/rate s, each acknowledged once written, until the directory
    /// refuses (the node powered off) or <see cref="Bound"/>'s stop.</summary>
    private async Task WriteAsync(int active, int trial, List<string> confirmed, List<string> written, CancellationToken cancellationToken)
    {
        var control = new AppHbControl(rig.Daemon(active)!.SocketPath);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; !cancellationToken.IsCancellationRequested; i++)
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"w/{Label}{trial:D4}-{i:D5}");
            if (PacedWritesPerSecond > 0)
            {
                var due = TimeSpan.FromSeconds((double)i / PacedWritesPerSecond) - Stopwatch.GetElapsedTime(started);
                if (due > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(due, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }

            await File.WriteAllTextAsync(Path.Combine(Data(rig, active), name), Expected(name), cancellationToken);
            written.Add(name);
            if (PacedWritesPerSecond > 0)
            {
                // Acknowledged only if done before the crash: the application dies with its node (a write that
                // ended after it would never have been acknowledged).
                if (Interlocked.Read(ref _crashedAt) != 0)
                {
                    return;
                }

                confirmed.Add(name);
                continue;
            }

            var barrier = Stopwatch.StartNew();
            try
            {
                await control.SyncReplicationAsync(cancellationToken);
            }
            catch (Exception e) when (e is AppHbException or IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
                return;
            }

            _barriers.Add(barrier.Elapsed.TotalMilliseconds);
            confirmed.Add(name);
        }
    }

    private static string Expected(string name) => $"{name} written and confirmed\n";

    private string? Content(int node, string name)
    {
        try
        {
            return File.ReadAllText(Path.Combine(Data(rig, node), name));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The active node once it is the replication source and its peer a caught-up replica on healthy links;
    /// null when that does not happen within the bound.</summary>
    private async Task<int?> SteadyAsync(CancellationToken cancellationToken)
    {
        int? active = null;
        await Polling.UntilAsync(async () =>
        {
            foreach (var me in new[] { 1, 2 })
            {
                if (await StatusAsync(me) is { Cluster: { Role: "active", InSync: true } pair, Replication: { Side: "source", Resyncing: false } }
                    && pair.Links.All(l => l.State == "up")
                    && await StatusAsync(3 - me) is { Cluster: { Role: "standby", Stale: false } peer, Replication.Side: "replica" }
                    && peer.Links.All(l => l.State == "up"))
                {
                    active = me;
                    return true;
                }
            }

            return false;
        }, Bound, cancellationToken);
        return active;
    }

    private async Task<StatusDocument?> StatusAsync(int me)
    {
        if (rig.Daemon(me) is not { } daemon)
        {
            return null;
        }

        try
        {
            return await new AppHbControl(daemon.SocketPath).GetStatusAsync();
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or AppHbException)
        {
            return null;
        }
    }

    private async Task RebootAsync(int node)
    {
        try
        {
            await rig.RebootAsync(node);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("apphbd exited", StringComparison.Ordinal))
        {
            _failures.Add($"node{node}'s apphbd exited while starting again: {e.Message}");
        }
    }

    private void Fail(int number, string what, int active, int standby)
    {
        var log = new StringBuilder().AppendLine(CultureInfo.InvariantCulture, $"trial {number}: {what}");
        foreach (var me in new[] { active, standby })
        {
            log.AppendLine(CultureInfo.InvariantCulture, $"--- node{me}, last lines:");
            foreach (var line in rig.Daemon(me)?.Lines.TakeLast(40) ?? [])
            {
                log.AppendLine(line);
            }
        }

        _failures.Add(log.ToString());
        progress?.Invoke(_failures[^1]);
    }
}

/// <summary>What the crash trials found: the only number that must be zero is <see cref="Missing"/> (with the
/// barrier; a paced writer's losses are its measure).</summary>
public sealed record ReplicationCrashReport(int Seed, int Trials, long Confirmed, long Missing, long UnconfirmedPresent,
    IReadOnlyList<double> TakeoverSeconds, IReadOnlyList<double> BarrierMilliseconds, IReadOnlyList<string> Failures, TimeSpan Elapsed)
{
    /// <summary>0: the writer waited for the barrier; otherwise its rate, and it never waited.</summary>
    public int PacedWritesPerSecond { get; init; }

    /// <summary>Acknowledged writes missing on the new active node, trial by trial.</summary>
    public IReadOnlyList<int> LostPerTrial { get; init; } = [];

    public override string ToString()
    {
        var text = new StringBuilder();
        static string Spread(IReadOnlyList<double> values, string format)
        {
            var sorted = values.Order().ToArray();
            string At(double q) => sorted.Length == 0 ? "-" : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)].ToString(format, CultureInfo.InvariantCulture);
            return $"p50 {At(0.5)}, p99 {At(0.99)}, max {(sorted.Length == 0 ? "-" : sorted[^1].ToString(format, CultureInfo.InvariantCulture))}";
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"trials {Trials} (seed {Seed}), {Elapsed.TotalMinutes:0.0} min");
        if (PacedWritesPerSecond > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"writes acknowledged once written ({PacedWritesPerSecond}/s, no barrier): {Confirmed}; lost (missing on the new active node): {Missing}; per crash: {Spread([.. LostPerTrial.Select(l => (double)l)], "0")}");
        }
        else
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"writes confirmed by the barrier: {Confirmed}; missing on the new active node: {Missing}; unconfirmed but there anyway: {UnconfirmedPresent}");
            text.AppendLine(CultureInfo.InvariantCulture, $"barrier (ms, apphbctl's client API over the control socket): {Spread(BarrierMilliseconds, "0.0")}");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"crash to the peer active as the replication source (s): {Spread(TakeoverSeconds, "0.00")}");
        text.AppendLine(CultureInfo.InvariantCulture, $"failed trials: {Failures.Count}");
        foreach (var failure in Failures)
        {
            text.AppendLine("  " + failure);
        }

        return text.ToString();
    }
}
