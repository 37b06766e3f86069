using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace AppHb.Benchmarks;

/// <summary>Our apphbd against Linux-HA's apphbd, same client simulator, same machine, one run.</summary>
internal sealed class HeartbeatBenchmark
{
    private const int RateClientsIntervalMs = 1000;
    // Above the 100,000 target, so that keeping up is unambiguous.
    private const double FixedRate = 120_000;
    private const int HungClients = 300;
    private const int HungIntervalMs = 400;
    private const int HungSpacingUs = 2000;
    private static readonly TimeSpan TicklePeriod = TimeSpan.FromMilliseconds(100);

    private readonly string _ours;
    private readonly LoadGenerator _load;
    private readonly int[] _clientCounts;
    private readonly double _seconds;
    private readonly bool _peerAvailable;
    private readonly StringBuilder _notes = new();

    public HeartbeatBenchmark(string oursBinary, string work, int[] clientCounts, double seconds)
    {
        _ours = oursBinary;
        _load = new LoadGenerator(work);
        _clientCounts = clientCounts;
        _seconds = seconds;
        _peerAvailable = File.Exists(LinuxHaDaemon.Binary);
        if (!_peerAvailable)
        {
            _notes.AppendLine($"- Linux-HA apphbd: {LinuxHaDaemon.Binary} is missing (apt-get install heartbeat); its column is empty.");
        }
    }

    private sealed record Row(string Metric, string Ours, string Theirs, string Ratio, string Target);

    public async Task<string> RunAsync()
    {
        var rows = new List<Row>();
        foreach (var clients in _clientCounts)
        {
            var ours = await SaturateAsync(await OurDaemon.StartAsync(_ours, Path.GetTempPath(), TicklePeriod), clients);
            var theirs = _peerAvailable ? await SaturateAsync(await LinuxHaDaemon.StartAsync(), clients) : null;
            rows.Add(Compare($"registering {clients:N0} clients (s)", ours?.RegisterMs / 1000, theirs?.RegisterMs / 1000, "0.00", lowerIsBetter: true));
            rows.Add(Compare($"beats/s processed, {clients:N0} clients, saturating", ours?.ProcessedPerSecond, theirs?.ProcessedPerSecond, "N0",
                target: clients >= 10_000 ? "≥ 100,000" : string.Empty));
        }

        foreach (var clients in _clientCounts)
        {
            var ours = await FixedRateAsync(await OurDaemon.StartAsync(_ours, Path.GetTempPath(), TicklePeriod), clients);
            var theirs = _peerAvailable ? await FixedRateAsync(await LinuxHaDaemon.StartAsync(), clients) : null;
            rows.Add(Compare($"beats/s sustained at {FixedRate:N0} offered, {clients:N0} clients", ours?.Rate, theirs?.Rate, "N0",
                target: clients >= 10_000 ? "≥ 100,000" : string.Empty));
            rows.Add(Compare($"backlog when that load stopped, {clients:N0} clients (ms)", ours?.BacklogMs, theirs?.BacklogMs, "0", lowerIsBetter: true));
            rows.Add(Compare($"false hung at {FixedRate:N0} beats/s, {clients:N0} clients (interval {RateClientsIntervalMs} ms)",
                ours?.FalseHung, theirs?.FalseHung, "N0", lowerIsBetter: true, target: "0"));
            rows.Add(Compare($"CPU per 100,000 beats, {clients:N0} clients (ms)", ours?.CpuMsPer100k, theirs?.CpuMsPer100k, "0.0", lowerIsBetter: true));
            rows.Add(Compare($"daemon RSS with {clients:N0} clients (MB)", ours?.RssMb, theirs?.RssMb, "0.0", lowerIsBetter: true,
                target: clients == 1000 ? "≤ 50" : string.Empty));
        }

        using (new Machine.CpuBurner())
        {
            var ours = await HungDelayAsync(await OurDaemon.StartAsync(_ours, Path.GetTempPath(), TicklePeriod), null);
            (Delays Delays, double TickleP99, double TickleMax)? theirs = null;
            if (_peerAvailable)
            {
                var fifo = Path.Combine(Path.GetTempPath(), $"apphb-bench-wd-{Environment.ProcessId}");
                File.Delete(fifo);
                Machine.Run("mkfifo", fifo);
                using var handle = File.OpenHandle(fifo, FileMode.Open, FileAccess.ReadWrite);
                await using var stream = new FileStream(handle, FileAccess.ReadWrite, 1);
                var buffer = new byte[64];
                using var tickles = new Observer("observe-tickles", () => stream.Read(buffer) > 0 ? "t" : null, stream.Dispose);
                theirs = await HungDelayAsync(await LinuxHaDaemon.StartAsync(fifo, (int)TicklePeriod.TotalMilliseconds), tickles);
                File.Delete(fifo);
            }

            rows.Add(Compare("hung raised after its deadline, p50 (ms), other core saturated", ours.Delays.P50, theirs?.Delays.P50, "0.000", lowerIsBetter: true));
            rows.Add(Compare("hung raised after its deadline, p99 (ms), other core saturated", ours.Delays.P99, theirs?.Delays.P99, "0.000", lowerIsBetter: true, target: "≤ 2"));
            rows.Add(Compare("hung raised after its deadline, max (ms), other core saturated", ours.Delays.Max, theirs?.Delays.Max, "0.000", lowerIsBetter: true));
            rows.Add(Compare($"hung events seen / expected ({HungClients})", ours.Delays.Count, theirs?.Delays.Count, "N0", target: HungClients.ToString(CultureInfo.InvariantCulture)));
            rows.Add(Compare($"tickle lateness p99 (ms), period {TicklePeriod.TotalMilliseconds} ms, other core saturated", ours.TickleP99, theirs?.TickleP99, "0.000", lowerIsBetter: true, target: "≤ 1"));
            rows.Add(Compare("tickle lateness max (ms), other core saturated", ours.TickleMax, theirs?.TickleMax, "0.000", lowerIsBetter: true));
        }

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"| metric | apphbd (AppHb) | Linux-HA apphbd 3.0.6 | ours / theirs | target |");
        report.AppendLine("|---|---:|---:|---:|---|");
        foreach (var row in rows)
        {
            report.AppendLine($"| {row.Metric} | {row.Ours} | {row.Theirs} | {row.Ratio} | {row.Target} |");
        }

        if (_notes.Length > 0)
        {
            report.AppendLine().Append(_notes);
        }

        return report.ToString();
    }

    private async Task<LoadGenerator.Result?> SaturateAsync(IHeartbeatDaemon daemon, int clients)
    {
        await using (daemon)
        {
            try
            {
                return await _load.RunAsync(daemon.Protocol, daemon.Socket, clients, 10_000, 0, "max", 0, _seconds, TimeSpan.FromMinutes(5));
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                _notes.AppendLine($"- {daemon.Name}, saturating {clients:N0} clients: {e.Message}");
                return null;
            }
        }
    }

    /// <param name="Rate">Beats/s offered and written over the load window, if the daemon kept up: nothing refused by
    /// a full socket and the backlog drained within a quarter of the clients' interval; otherwise what it processed.</param>
    private sealed record FixedRateResult(double Rate, double BacklogMs, long FalseHung, double CpuMsPer100k, double RssMb);

    private async Task<FixedRateResult?> FixedRateAsync(IHeartbeatDaemon daemon, int clients)
    {
        await using (daemon)
        {
            try
            {
                var cpuBefore = Machine.CpuTime(daemon.Pid);
                double rss = 0;
                // Sampled while the load runs; a sample after the daemon is gone (NaN) is not a measurement.
                using var sampler = new Timer(_ =>
                {
                    var sample = Machine.ResidentMegabytes(daemon.Pid);
                    if (!double.IsNaN(sample))
                    {
                        rss = Math.Max(rss, sample);
                    }
                }, null, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(500));
                long loadStarted = 0;
                var result = await _load.RunAsync(daemon.Protocol, daemon.Socket, clients, RateClientsIntervalMs, 0, "rate", FixedRate, _seconds,
                    TimeSpan.FromMinutes(5), onRegistered: () =>
                    {
                        loadStarted = Stopwatch.GetTimestamp();
                        cpuBefore = Machine.CpuTime(daemon.Pid);
                    });
                var cpu = Machine.CpuTime(daemon.Pid) - cpuBefore;
                await sampler.DisposeAsync();
                // A hung raised while the load runs is false: every client is beating twelve times per interval. Not
                // counted: the first interval (while hbload registers thousands of clients, the first ones wait for the
                // last), and after the load (the clients fall silent but stay connected: they are hung, truly). When
                // each was raised is the daemon's time, not the observer's: the observer reads late under this load.
                var loadEnded = loadStarted + (long)(result.LoadSeconds * Stopwatch.Frequency);
                var hung = daemon.Events.Messages.Count(m => daemon.HungClientIndex(m.Message) is not null
                    && daemon.RaisedAt(m.Message, m.At) is var raised
                    && raised > loadStarted + Stopwatch.Frequency * RateClientsIntervalMs / 1000 && raised < loadEnded);
                var keptUp = result.Blocked == 0 && result.BacklogMs <= RateClientsIntervalMs / 4.0;
                var rate = keptUp ? result.Sent / result.LoadSeconds : result.ProcessedPerSecond;
                return new FixedRateResult(rate, result.BacklogMs, hung, cpu.TotalMilliseconds / result.Sent * 100_000, rss);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                _notes.AppendLine($"- {daemon.Name}, {FixedRate:N0} beats/s at {clients:N0} clients: {e.Message}");
                return null;
            }
        }
    }

    private sealed record Delays(int Count, double P50, double P99, double Max);

    private async Task<(Delays Delays, double TickleP99, double TickleMax)> HungDelayAsync(IHeartbeatDaemon daemon, Observer? tickles)
    {
        await using (daemon)
        {
            var hold = (HungClients * HungSpacingUs / 1e6) + (HungIntervalMs / 1000.0) + 1.0;
            var result = await _load.RunAsync(daemon.Protocol, daemon.Socket, HungClients, HungIntervalMs, 0, "stall", HungSpacingUs, hold, TimeSpan.FromMinutes(2));
            var delays = new List<double>();
            foreach (var (at, message) in daemon.Events.Messages)
            {
                if (daemon.HungClientIndex(message) is { } index && result.BeatTimestamps.TryGetValue(index, out var beat))
                {
                    var deadline = beat + (long)(HungIntervalMs * (Stopwatch.Frequency / 1000.0));
                    var late = (at - deadline) * 1000.0 / Stopwatch.Frequency;
                    if (late > -HungIntervalMs / 2.0)
                    {
                        // Only the episode that follows the stall: an earlier one (deadline from registration) would
                        // show up as a large negative value and is not what is measured.
                        delays.Add(late);
                    }
                }
            }

            delays.Sort();
            var summary = delays.Count == 0
                ? new Delays(0, double.NaN, double.NaN, double.NaN)
                : new Delays(delays.Count, Percentiles.NearestRank(delays, 0.5), Percentiles.NearestRank(delays, 0.99), delays[^1]);

            if (daemon is OurDaemon ours)
            {
                var status = await ours.StatusAsync();
                return (summary, status.Watchdog.TickleLatenessP99Ms, status.Watchdog.TickleLatenessMaxMs);
            }

            // Linux-HA re-arms a relative timer after each tickle: lateness is how much longer than one period each
            // gap between two tickles was (the same quantity ours records against its absolute schedule).
            var arrivals = tickles!.Messages.Select(m => m.At).ToList();
            var gaps = arrivals.Zip(arrivals.Skip(1), (a, b) => Math.Max(0, (b - a) * 1000.0 / Stopwatch.Frequency - TicklePeriod.TotalMilliseconds)).ToList();
            gaps.Sort();
            return (summary, gaps.Count == 0 ? double.NaN : Percentiles.NearestRank(gaps, 0.99), gaps.Count == 0 ? double.NaN : gaps[^1]);
        }
    }

    private static Row Compare(string metric, double? ours, double? theirs, string format, bool lowerIsBetter = false, string target = "")
    {
        string F(double? v) => v is { } x && !double.IsNaN(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "n/a";
        // A ratio of signed or zero quantities says nothing (a negative delay is an event raised early).
        var ratio = ours is { } o && theirs is { } t && t > 0 && o >= 0 && !double.IsNaN(o) && !double.IsNaN(t)
            ? (o / t).ToString("0.00", CultureInfo.InvariantCulture) + "×"
            : "n/a";
        _ = lowerIsBetter;
        return new Row(metric, F(ours), F(theirs), ratio, target);
    }
}
