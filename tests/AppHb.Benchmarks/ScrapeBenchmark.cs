using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AppHb.Benchmarks;

/// <summary>/metrics under load: the shipped apphbd with 50 services (each with a TCP check) and 1,000 heartbeat
/// clients beating at a sustained rate, scraped back to back; the scrape time is the client-side time of a full GET.
/// Alongside, the tickle lateness apphbd records, to show scrapes do not disturb its realtime path.</summary>
internal sealed class ScrapeBenchmark(string apphbd, string work, double seconds)
{
    private const int Clients = 1000;
    private const int Services = 50;

    public async Task<string> RunAsync()
    {
        var directory = Directory.CreateTempSubdirectory("scrape-").FullName;
        var socket = Path.Combine(directory, "apphbd.sock");
        var port = FreePort();
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
            {services}
            """);
        var info = new ProcessStartInfo(apphbd, ["--config", config]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var daemon = Process.Start(info)!;
        _ = daemon.StandardOutput.ReadToEndAsync();
        _ = daemon.StandardError.ReadToEndAsync();
        using var http = new HttpClient();
        var url = new Uri($"http://127.0.0.1:{port}/metrics");
        var ready = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await http.GetStringAsync(url);
                break;
            }
            catch (HttpRequestException) when (ready.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(100);
            }
        }

        var load = new LoadGenerator(work);
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // 1,000 clients at 10 beats/s each (10,000 beats/s), for the run.
        var running = load.RunAsync("apphb", socket, Clients, 1000, 0, "rate", 10_000, seconds, TimeSpan.FromMinutes(5), onRegistered: () => registered.TrySetResult());
        await registered.Task.WaitAsync(TimeSpan.FromMinutes(2));
        await Task.Delay(1500);

        var times = new List<double>();
        var size = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(seconds - 2))
        {
            var start = Stopwatch.GetTimestamp();
            var text = await http.GetStringAsync(url);
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            size = text.Length;
            await Task.Delay(10);
        }

        // Read before the load generator ends and its clients disconnect.
        var after = await new AppHb.Client.AppHbControl(socket).GetStatusAsync();
        await running;
        daemon.Kill();
        await daemon.WaitForExitAsync();
        times.Sort();
        double P(double p) => times[Math.Min(times.Count - 1, (int)Math.Ceiling(p * times.Count) - 1)];
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"/metrics with {after.Clients.Count} clients beating 10,000/s in total and {after.Services.Count} services (each with a TCP check), scraped back to back for {seconds - 2:0} s:");
        report.AppendLine();
        report.AppendLine("| metric | apphbd | target |");
        report.AppendLine("|---|---:|---|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| scrapes | {times.Count} |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| exposition size (KB) | {size / 1024.0:0} |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| scrape time p50 (ms) | {P(0.50):0.00} |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| scrape time p99 (ms) | {P(0.99):0.00} | < 5 |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| scrape time max (ms) | {times[^1]:0.00} |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| tickle lateness p99 / max during the run (ms), period 100 ms | {after.Watchdog.TickleLatenessP99Ms:0.000} / {after.Watchdog.TickleLatenessMaxMs:0.000} | ≤ 1 |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| deadline loop lateness p99 (ms) | {after.Daemon.LoopLatenessP99Ms:0.000} |  |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| clients hung during the run (false hung) | {after.Clients.Count(c => c.State == "hung")} | 0 |");
        Directory.Delete(directory, recursive: true);
        return report.ToString();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
