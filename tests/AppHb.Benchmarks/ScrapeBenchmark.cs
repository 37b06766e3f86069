using System.Diagnostics;
using System.Globalization;
using System.Text;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>Level 4 under load: the shipped apphbd with 50 services (each with a TCP check) and 1,000 heartbeat clients
/// beating 10,000 times a second in total.
/// <para>/metrics is scraped back to back, alternating with the Prometheus node exporter (the exporter a user already
/// runs on the node) as the peer; the time is the client-side time of a full GET.</para>
/// <para>Then the APPHB-MIB subtree is walked with snmpbulkwalk through a real snmpd (apphbd as its AgentX subagent),
/// alternating with snmpd's own hrSWRunTable (HOST-RESOURCES-MIB, served inside snmpd) as the peer; the time is the
/// tool's whole run, as an operator or a poller sees it.</para>
/// <para>Alongside, the tickle lateness and false hung apphbd records: neither kind of request may disturb its
/// realtime path.</para></summary>
internal sealed class ScrapeBenchmark(string apphbd, string work, double seconds)
{
    private const int Clients = 1000;
    private const int Services = 50;
    private const string NodeExporter = "/usr/bin/prometheus-node-exporter";
    private readonly byte[] _body = new byte[1 << 20];

    public async Task<string> RunAsync()
    {
        var directory = Directory.CreateTempSubdirectory("scrape-").FullName;
        await using var snmp = await NetSnmp.StartAsync(fullView: true);
        // The like-for-like peer of apphbd's subagent: net-snmp's own, serving hrSWRunTable through a master of its own.
        await using var peerSnmp = await NetSnmp.StartAsync(fullView: true, hostResourcesBySubagent: true);
        var socket = Path.Combine(directory, "apphbd.sock");
        var port = LoopbackPorts.Free();
        var services = new StringBuilder("services:\n");
        for (var i = 0; i < Services; i++)
        {
            services.Append(CultureInfo.InvariantCulture, $"""
                  svc{i:00}:
                    command: [/bin/sleep, "100000"]
                    checks:
                      - name: port
                        type: tcp
                        address: 127.0.0.1:1
                        interval: 1s
                        timeout: 500ms
                        failures: 1000
                        action: alert

                """);
        }

        var config = Path.Combine(directory, "apphbd.yaml");
        await File.WriteAllTextAsync(config, $"""
            socket:
              path: {socket}
            watchdog:
              backend: none
              timeout: 10s
              period: 100ms
            metrics:
              listen: 127.0.0.1:{port}
            snmp:
              agentx: {snmp.AgentXSocket}
            {services}
            """);
        using var daemon = Start(apphbd, "--config", config);
        var peerPort = LoopbackPorts.Free();
        using var exporter = Start(NodeExporter, $"--web.listen-address=127.0.0.1:{peerPort}");
        using var http = new HttpClient();
        var ours = new Uri($"http://127.0.0.1:{port}/metrics");
        var theirs = new Uri($"http://127.0.0.1:{peerPort}/metrics");
        await WaitUntilServingAsync(http, ours);
        await WaitUntilServingAsync(http, theirs);

        var load = new LoadGenerator(work);
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // 1,000 clients at 10 beats/s each (10,000 beats/s), for the run.
        var running = load.RunAsync("apphb", socket, Clients, 1000, 0, "rate", 10_000, seconds, TimeSpan.FromMinutes(5), onRegistered: () => registered.TrySetResult());
        await registered.Task.WaitAsync(TimeSpan.FromMinutes(2));
        await Task.Delay(1500);
        // Counted now: the load ends with the run, and by the status read at the end its clients may have left.
        var beating = (await new AppHb.Client.AppHbControl(socket).GetStatusAsync()).Clients.Count;

        var phase = TimeSpan.FromSeconds((seconds - 4) / 2);
        // The histogram since start holds the warm-up scrapes too; the phase's own share is the difference.
        // One exposition read before the run gives the scrape histogram's, the tickle-lateness histogram's and the
        // collections' starting points (the daemon's own lateness window spans its start too).
        var before = await http.GetStringAsync(ours);
        var ownBefore = Buckets(before, ScrapeDuration);
        var ticklesBefore = Buckets(before, TickleLateness);
        var gcBefore = Collections(before);
        var scrapes = (Ours: new List<double>(), Theirs: new List<double>());
        var sizes = (Ours: 0, Theirs: 0);
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < phase)
        {
            var (time, size) = await ScrapeAsync(http, ours);
            scrapes.Ours.Add(time);
            sizes.Ours = size;
            (time, size) = await ScrapeAsync(http, theirs);
            scrapes.Theirs.Add(time);
            sizes.Theirs = size;
            await Task.Delay(10);
        }

        var (within5Ms, ownP99) = OwnScrapeTimes(ownBefore, Buckets(await http.GetStringAsync(ours), ScrapeDuration));
        var replay = await ReplayAsync(snmp);
        var snmpdCpu = (Ours: TimeSpan.Zero, Theirs: TimeSpan.Zero);
        var subagentWalks = new List<double>();
        var subagentVarbinds = 0;
        var subagentMasterCpu = TimeSpan.Zero;
        var walks = (Ours: new List<double>(), Theirs: new List<double>());
        var varbinds = (Ours: 0, Theirs: 0);
        var tables = new List<double>();
        var tablesByNext = new List<double>();
        var rows = 0;
        watch.Restart();
        while (watch.Elapsed < phase)
        {
            // The way to read a table through snmpd: every column in each GetBulk, so each of snmpd's AgentX requests
            // carries a row instead of a cell.
            var (time, count) = await TableAsync(snmp, "-Cr", "10");
            tables.Add(time);
            rows = count;

            // The same table by GetNext (-CB): snmpd puts all of a request's varbinds for one subagent into one AgentX
            // GetNext, which it never does for a GetBulk, so this is one round trip per row instead of per cell.
            (time, count) = await TableAsync(snmp, "-CB");
            tablesByNext.Add(time);
            if (count != rows)
            {
                throw new InvalidOperationException($"snmptable -CB read {count} rows, by GetBulk {rows}");
            }

            var walk = await WalkAsync(snmp, ".1.3.6.1.4.1.32473");
            walks.Ours.Add(walk.Ms);
            varbinds.Ours = walk.Varbinds;
            snmpdCpu.Ours += walk.MasterCpu;
            walk = await WalkAsync(snmp, ".1.3.6.1.2.1.25.4.2");
            walks.Theirs.Add(walk.Ms);
            varbinds.Theirs = walk.Varbinds;
            snmpdCpu.Theirs += walk.MasterCpu;
            walk = await WalkAsync(peerSnmp, ".1.3.6.1.2.1.25.4.2");
            subagentWalks.Add(walk.Ms);
            subagentVarbinds = walk.Varbinds;
            subagentMasterCpu += walk.MasterCpu;
        }

        // Read before the load generator ends and its clients disconnect.
        var end = await http.GetStringAsync(ours);
        var ticklesAfter = Buckets(end, TickleLateness);
        var gcAfter = Collections(end);
        var after = await new AppHb.Client.AppHbControl(socket).GetStatusAsync();
        await running;
        // SIGTERM: apphbd stops its 50 services on the way out (SIGKILL would leave them running, orphaned).
        ProcessRunner.Signal(daemon.Id, 15);
        exporter.Kill();
        if (!daemon.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            daemon.Kill();
        }

        await daemon.WaitForExitAsync();
        await exporter.WaitForExitAsync();

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"apphbd with {beating} clients beating 10,000/s in total and {after.Services.Count} services (each with a TCP check).");
        report.AppendLine(CultureInfo.InvariantCulture, $"/metrics scraped back to back for {phase.TotalSeconds:0} s, alternating with prometheus-node-exporter (default collectors);");
        report.AppendLine(CultureInfo.InvariantCulture, $"then `snmpbulkwalk -v2c` (max-repetitions 10, the tool's default) through snmpd 5.9 for {phase.TotalSeconds:0} s, APPHB-MIB (AgentX, apphbd)");
        report.AppendLine("alternating with snmpd's own hrSWRunTable (HOST-RESOURCES-MIB, in snmpd) and the same table served by net-snmp's own AgentX");
        report.AppendLine("subagent (snmpd -X) through a second master. Times per varbind compare unequal sizes.");
        report.AppendLine();
        report.AppendLine("| metric | apphbd | peer | ratio | target |");
        report.AppendLine("|---|---:|---:|---:|---|");
        Row(report, "scrapes", scrapes.Ours.Count, scrapes.Theirs.Count, "0", null);
        Row(report, "exposition size (KB)", sizes.Ours / 1024.0, sizes.Theirs / 1024.0, "0", null);
        Row(report, "scrape time p50 (ms)", P(scrapes.Ours, 0.50), P(scrapes.Theirs, 0.50), "0.00", null);
        Row(report, "scrape time p99 (ms)", P(scrapes.Ours, 0.99), P(scrapes.Theirs, 0.99), "0.00", "< 5");
        Row(report, "scrape time max (ms)", scrapes.Ours.Max(), scrapes.Theirs.Max(), "0.00", null);
        report.AppendLine(CultureInfo.InvariantCulture, $"| apphbd's own time per scrape (its histogram): p99 at most (ms) / share within 5 ms | {ownP99} / {within5Ms:0.0} % |  |  |  |");
        Row(report, "scrape time p50 per MB of exposition (ms)", P(scrapes.Ours, 0.50) / (sizes.Ours / 1048576.0), P(scrapes.Theirs, 0.50) / (sizes.Theirs / 1048576.0), "0.0", null);
        Row(report, "full bulkwalks", walks.Ours.Count, walks.Theirs.Count, "0", null);
        Row(report, "varbinds in the walk", varbinds.Ours, varbinds.Theirs, "0", null);
        Row(report, "full bulkwalk p50 (ms)", P(walks.Ours, 0.50), P(walks.Theirs, 0.50), "0.0", null);
        Row(report, "full bulkwalk max (ms)", walks.Ours.Max(), walks.Theirs.Max(), "0.0", "< 100");
        // What no subagent can go below: snmpd is single-threaded and the walk's round trips strictly sequential.
        Row(report, "snmpd's own CPU per walk, mean (ms)", snmpdCpu.Ours.TotalMilliseconds / walks.Ours.Count, snmpdCpu.Theirs.TotalMilliseconds / walks.Theirs.Count, "0.0", null);
        Row(report, "bulkwalk p50 per 1,000 varbinds (ms)", P(walks.Ours, 0.50) / (varbinds.Ours / 1000.0), P(walks.Theirs, 0.50) / (varbinds.Theirs / 1000.0), "0.0", null);
        report.AppendLine("| *through an AgentX subagent, beside net-snmp's own (snmpd -X serving hrSWRunTable to a master of its own):* | | | | |");
        Row(report, "varbinds in the walk", varbinds.Ours, subagentVarbinds, "0", null);
        Row(report, "full bulkwalk through AgentX p50 (ms)", P(walks.Ours, 0.50), P(subagentWalks, 0.50), "0.0", null);
        Row(report, "bulkwalk through AgentX p50 per 1,000 varbinds (ms)", P(walks.Ours, 0.50) / (varbinds.Ours / 1000.0), P(subagentWalks, 0.50) / (subagentVarbinds / 1000.0), "0.0", null);
        Row(report, "the master snmpd's CPU per walk, mean (ms)", snmpdCpu.Ours.TotalMilliseconds / walks.Ours.Count, subagentMasterCpu.TotalMilliseconds / subagentWalks.Count, "0.0", null);
        report.AppendLine(CultureInfo.InvariantCulture, $"| apphbd's own work per AgentX GetNext: decode, answer, encode (µs, in-process replay of the walk) | {replay:0.00} |  |  |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| apphbClientTable by snmptable, all columns per GetBulk ({rows} rows), p50 / max (ms) | {P(tables, 0.50):0.0} / {tables.Max():0.0} |  |  |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| the same by GetNext (snmptable -CB: one AgentX request per row), p50 / max (ms) | {P(tablesByNext, 0.50):0.0} / {tablesByNext.Max():0.0} |  |  |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| tickle lateness p99 / max over apphbd's window: its start, 1,000 registrations and the run (ms), period 100 ms | {after.Watchdog.TickleLatenessP99Ms:0.000} / {after.Watchdog.TickleLatenessMaxMs:0.000} |  |  | ≤ 1 |");
        var tickles = TickleLatenessOfRun(ticklesBefore, ticklesAfter);
        report.AppendLine(CultureInfo.InvariantCulture, $"| tickle lateness during the run, by apphbd's histogram: tickles / share within 0.8 ms / over 3.2 ms / p99 at most (ms) | {tickles.Count:0} / {tickles.Within:0.0} % / {tickles.Over:0} / {tickles.P99} |  |  | p99 ≤ 1 |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| collections during the run / their pause in total (ms) | {gcAfter.Collections - gcBefore.Collections:0} / {(gcAfter.PauseSeconds - gcBefore.PauseSeconds) * 1000:0.0} |  |  |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| deadline loop lateness p99 (ms) | {after.Daemon.LoopLatenessP99Ms:0.000} |  |  |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| clients hung during the run (false hung) | {after.Clients.Count(c => c.State == "hung")} |  |  | 0 |");
        Directory.Delete(directory, recursive: true);
        return report.ToString();
    }

    private static void Row(StringBuilder report, string metric, double ours, double theirs, string format, string? target) =>
        report.AppendLine(CultureInfo.InvariantCulture,
            $"| {metric} | {ours.ToString(format, CultureInfo.InvariantCulture)} | {theirs.ToString(format, CultureInfo.InvariantCulture)} | {(theirs == 0 ? "n/a" : (ours / theirs).ToString("0.00", CultureInfo.InvariantCulture) + "×")} | {target} |");

    private static double P(List<double> times, double p) => Percentiles.NearestRank(times.Order().ToList(), p);

    /// <summary>Reads the body into one reused buffer: a string of hundreds of KB per scrape would put the scraper's
    /// own large-object-heap collections into the tail being measured.</summary>
    private async Task<(double Ms, int Size)> ScrapeAsync(HttpClient http, Uri url)
    {
        var start = Stopwatch.GetTimestamp();
        using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync();
        var size = 0;
        int read;
        while ((read = await body.ReadAsync(_body.AsMemory(size % _body.Length, Math.Min(65536, _body.Length - (size % _body.Length))))) > 0)
        {
            size += read;
        }

        return (Stopwatch.GetElapsedTime(start).TotalMilliseconds, size);
    }

    /// <summary>apphbd's own serving time, from its apphb_metrics_scrape_duration_seconds histogram read before and
    /// after the phase: the share of the phase's scrapes served within 5 ms, and the smallest bucket bound that holds
    /// 99 % of them.</summary>
    private static (double Within5Ms, string P99) OwnScrapeTimes(List<(string Le, double Count)> before, List<(string Le, double Count)> after)
    {
        var buckets = after.Select((b, i) => (b.Le, Count: b.Count - before[i].Count)).ToList();
        var total = buckets[^1].Count;
        var within = buckets.Single(b => b.Le == "0.005").Count;
        var p99 = buckets.First(b => b.Count >= 0.99 * total).Le;
        return (100 * within / total, p99 == "+Inf" ? "> 100" : (double.Parse(p99, CultureInfo.InvariantCulture) * 1000).ToString("0.#", CultureInfo.InvariantCulture));
    }

    private const string ScrapeDuration = "apphb_metrics_scrape_duration_seconds";
    private const string TickleLateness = "apphb_watchdog_tickle_lateness_seconds";

    private static List<(string Le, double Count)> Buckets(string exposition, string family) =>
        System.Text.RegularExpressions.Regex.Matches(exposition, family + @"_bucket\{le=""([^""]+)""\} (\d+)")
            .Select(m => (Le: m.Groups[1].Value, Count: double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))).ToList();

    /// <summary>apphbd's collections and their pause total.</summary>
    private static (double Collections, double PauseSeconds) Collections(string exposition)
    {
        double Read(string name) => double.Parse(System.Text.RegularExpressions.Regex.Match(exposition, "^" + name + " (\\S+)$",
            System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value, CultureInfo.InvariantCulture);
        return (Read("apphb_gc_collections_total"), Read("apphb_gc_pause_seconds_total"));
    }

    /// <summary>The run's tickles from the difference of two readings of the lateness histogram: how many, the share
    /// within 0.8 ms (its bucket nearest the 1 ms target), how many over 3.2 ms, and the bucket bound that holds 99 %.</summary>
    private static (double Count, double Within, double Over, string P99) TickleLatenessOfRun(List<(string Le, double Count)> before, List<(string Le, double Count)> after)
    {
        var buckets = after.Select((b, i) => (Bound: b.Le == "+Inf" ? double.PositiveInfinity : double.Parse(b.Le, CultureInfo.InvariantCulture), Count: b.Count - before[i].Count)).ToList();
        var total = buckets[^1].Count;
        var within = buckets.Last(b => b.Bound <= 0.001).Count;
        var over = total - buckets.Last(b => b.Bound <= 0.0035).Count;
        var p99 = buckets.First(b => b.Count >= 0.99 * total).Bound;
        return (total, 100 * within / total, over, double.IsInfinity(p99) ? "> 819" : (p99 * 1000).ToString("0.###", CultureInfo.InvariantCulture));
    }

    /// <summary>apphbd's share of one round trip: the walk's OIDs in an object store, then every GetNext of the walk
    /// decoded, answered and encoded in this process, without snmpd, sockets or scheduling.</summary>
    private static async Task<double> ReplayAsync(NetSnmp snmp)
    {
        var (_, output) = await ProcessRunner.RunAsync("snmpbulkwalk", [.. NetSnmp.V2c, "-On", "-Oq", "-m", "", "-M", "/nonexistent", snmp.Agent, ".1.3.6.1.4.1.32473"]);
        var builder = new AppHb.Export.Snmp.ObjectStoreBuilder();
        foreach (var line in output.Split('\n').Where(l => l.StartsWith('.')))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var oid = AppHb.Export.Snmp.ObjectIdentifier.Parse(line[..space]);
            builder.AddCell(new AppHb.Export.Snmp.ObjectIdentifier(oid.SubIdentifiers[..^1].ToArray()), oid.SubIdentifiers[^1], new AppHb.Export.Snmp.OctetString(line[(space + 1)..]));
        }

        var store = builder.Build();
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
        var requests = 0;
        var watch = Stopwatch.StartNew();
        for (var round = 0; round < 5; round++)
        {
            var start = AppHb.Export.Snmp.ObjectIdentifier.Parse("1.3.6.1.4.1.32473");
            while (true)
            {
                buffer.ResetWrittenCount();
                AppHb.Export.Snmp.AgentX.AgentXWriter.Encode(new AppHb.Export.Snmp.AgentX.GetPdu(true, [new(start, false, AppHb.Export.Snmp.ObjectIdentifier.Null)]) { PacketId = 1 }, buffer);
                var header = AppHb.Export.Snmp.AgentX.AgentXReader.ReadHeader(buffer.WrittenSpan);
                var request = AppHb.Export.Snmp.AgentX.AgentXReader.ReadPdu(header, buffer.WrittenSpan[AppHb.Export.Snmp.AgentX.AgentXHeader.Size..]);
                var reply = AppHb.Export.Snmp.AgentX.AgentXResponder.Answer(request, store)!;
                buffer.ResetWrittenCount();
                AppHb.Export.Snmp.AgentX.AgentXWriter.Encode(reply, buffer);
                requests++;
                if (reply.Variables[0].Data is AppHb.Export.Snmp.SnmpException)
                {
                    break;
                }

                start = reply.Variables[0].Id;
            }
        }

        return watch.Elapsed.TotalMicroseconds / requests;
    }

    /// <summary>One snmpbulkwalk, with the master snmpd's CPU time spent on it.</summary>
    private static async Task<(double Ms, int Varbinds, TimeSpan MasterCpu)> WalkAsync(NetSnmp snmp, string subtree)
    {
        var cpu = Machine.CpuTime(snmp.SnmpdProcessId);
        var start = Stopwatch.GetTimestamp();
        var (code, output) = await ProcessRunner.RunAsync("snmpbulkwalk", [.. NetSnmp.V2c, "-On", "-m", "", "-M", "/nonexistent", snmp.Agent, subtree]);
        var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return code == 0
            ? (ms, output.Split('\n').Count(l => l.StartsWith('.')), Machine.CpuTime(snmp.SnmpdProcessId) - cpu)
            : throw new InvalidOperationException($"snmpbulkwalk {subtree}: {output}");
    }

    /// <summary>apphbClientTable read by snmptable with these options: the time and the rows it printed.</summary>
    private static async Task<(double Ms, int Rows)> TableAsync(NetSnmp snmp, params string[] options)
    {
        var start = Stopwatch.GetTimestamp();
        var (code, output) = await ProcessRunner.RunAsync("snmptable", ["-M", NetSnmp.MibDirectories, "-m", "APPHB-MIB", .. NetSnmp.V2c, .. options, "-Cf", ",", snmp.Agent, "APPHB-MIB::apphbClientTable"]);
        var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return code == 0
            ? (ms, output.Split('\n').Count(l => l.Contains(',', StringComparison.Ordinal)) - 1)
            : throw new InvalidOperationException($"snmptable {string.Join(' ', options)}: {output}");
    }

    private static Process Start(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return process;
    }

    private static async Task WaitUntilServingAsync(HttpClient http, Uri url)
    {
        var ready = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await http.GetStringAsync(url);
                return;
            }
            catch (HttpRequestException) when (ready.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(100);
            }
        }
    }
}
