using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>/metrics against Prometheus's own tools and a real Prometheus server.</summary>
public sealed class MetricsTests
{
    private const string Promtool = "/usr/bin/promtool";

    private static async Task<(DaemonProcess Daemon, Uri Metrics)> StartAsync()
    {
        var daemon = await DaemonProcess.StartAsync("""
            metrics:
              listen: 127.0.0.1:0
            services:
              worker:
                command: [/bin/sleep, "1000"]
                checks:
                  - name: port
                    type: tcp
                    address: 127.0.0.1:1
                    interval: 100ms
                    timeout: 50ms
                    failures: 1000
                    action: alert
            """, realtime: false);
        var line = await daemon.WaitForLineAsync("Prometheus scrapes", TimeSpan.FromSeconds(10));
        return (daemon, new Uri(Regex.Match(line, @"http://\S+/metrics").Value));
    }

    private static async Task<int> RestartOnceAsync(DaemonProcess daemon)
    {
        var control = new AppHbControl(daemon.SocketPath);
        var before = (await control.GetStatusAsync()).Services.Single().Pid!.Value;
        _ = ProcessRunner.Signal(before, 9);
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            var service = (await control.GetStatusAsync()).Services.Single();
            if (service.State == "running" && service.Pid != before)
            {
                return (int)service.Restarts;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("worker was not restarted");
    }

    [Fact]
    public async Task A_live_scrape_passes_promtool_and_shows_what_apphbctl_shows()
    {
        var (daemon, metrics) = await StartAsync();
        await using var owned = daemon;
        await using var client = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "orders", Interval = TimeSpan.FromSeconds(10) });
        await client.RegisterAsync();
        var restarts = await RestartOnceAsync(daemon);

        using var http = new HttpClient();
        // The port check fails (nothing listens) and the tickle loop runs: wait until a scrape has seen both.
        await WaitForScrapeAsync(http, metrics, t => Regex.IsMatch(t, @"apphb_service_check_failures_total\{service=""worker"",check=""port""\} [1-9]")
            && Regex.IsMatch(t, @"apphb_watchdog_tickle_lateness_seconds_count [1-9]"));
        using var response = await http.GetAsync(metrics);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains($"apphb_service_restarts_total{{service=\"worker\"}} {restarts}\n", text, StringComparison.Ordinal);
        Assert.Contains("apphb_service_up{service=\"worker\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("apphb_service_last_exit_code{service=\"worker\"} -9\n", text, StringComparison.Ordinal);
        Assert.Contains("apphb_clients 1\n", text, StringComparison.Ordinal);
        Assert.Contains("apphb_client_interval_seconds{name=\"orders\",client_instance=\"\"} 10\n", text, StringComparison.Ordinal);
        Assert.Matches(@"apphb_service_check_failures_total\{service=""worker"",check=""port""\} [1-9]", text);
        Assert.Matches(@"apphb_service_check_duration_seconds_count\{service=""worker"",check=""port""\} [1-9]", text);
        Assert.Matches(@"apphb_watchdog_tickles_total [1-9]", text);
        Assert.Matches(@"apphb_watchdog_tickle_lateness_seconds_count [1-9]", text);
        Assert.Contains("apphb_build_info{version=", text, StringComparison.Ordinal);

        // promtool's linter: naming, units, help, types. It prints nothing when all is well.
        var (code, output) = await RunWithInputAsync(Promtool, text, "check", "metrics");
        Assert.True(code == 0 && output.Trim().Length == 0, $"promtool check metrics ({code}): {output}");

        using var request = new HttpRequestMessage(HttpMethod.Get, metrics);
        request.Headers.Accept.ParseAdd("application/openmetrics-text;version=1.0.0");
        using var open = await http.SendAsync(request);
        Assert.StartsWith("application/openmetrics-text", open.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var openText = await open.Content.ReadAsStringAsync();
        Assert.EndsWith("# EOF\n", openText, StringComparison.Ordinal);
        Assert.Contains("# TYPE apphb_service_restarts counter\n", openText, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri(metrics, "/other"))).StatusCode);

        // A client that leaves takes its series with it; one registering again under the same name gets fresh ones.
        await client.DisposeAsync();
        await WaitForScrapeAsync(http, metrics, t => t.Contains("apphb_clients 0\n", StringComparison.Ordinal));
        Assert.DoesNotContain("name=\"orders\"", await http.GetStringAsync(metrics), StringComparison.Ordinal);
        await using var again = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "orders", Interval = TimeSpan.FromSeconds(20) });
        await again.RegisterAsync();
        await WaitForScrapeAsync(http, metrics, t => t.Contains("apphb_client_interval_seconds{name=\"orders\",client_instance=\"\"} 20\n", StringComparison.Ordinal)
            && t.Contains("apphb_client_is_hung{name=\"orders\",client_instance=\"\"} 0\n", StringComparison.Ordinal));
    }

    private static async Task WaitForScrapeAsync(HttpClient http, Uri metrics, Func<string, bool> condition)
    {
        var text = string.Empty;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            text = await http.GetStringAsync(metrics);
            if (condition(text))
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"the scrape never showed what was expected; last one:\n{text}");
    }

    [Fact]
    public async Task A_real_Prometheus_server_scrapes_the_values_apphbctl_status_shows()
    {
        var (daemon, metrics) = await StartAsync();
        await using var owned = daemon;
        var restarts = await RestartOnceAsync(daemon);
        restarts = await RestartOnceAsync(daemon);
        using var directory = new TempDirectory();
        var port = LoopbackPorts.Free();
        await File.WriteAllTextAsync(directory.File("prometheus.yml"), $"""
            global:
              scrape_interval: 1s
            rule_files:
              - {Path.Combine(RepositoryPaths.Root, "monitoring", "prometheus", "apphb-alerts.yml")}
            scrape_configs:
              - job_name: apphb
                static_configs:
                  - targets: ["{metrics.Authority}"]
            """);
        var info = new ProcessStartInfo("/usr/bin/prometheus") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { $"--config.file={directory.File("prometheus.yml")}", $"--storage.tsdb.path={directory.File("data")}", $"--web.listen-address=127.0.0.1:{port}" })
        {
            info.ArgumentList.Add(arg);
        }

        using var prometheus = Process.Start(info)!;
        _ = prometheus.StandardOutput.ReadToEndAsync();
        _ = prometheus.StandardError.ReadToEndAsync();
        try
        {
            using var http = new HttpClient();
            var status = await new AppHbControl(daemon.SocketPath).GetStatusAsync();
            var query = await QueryUntilAsync(http, port, "apphb_service_restarts_total{job=\"apphb\",service=\"worker\"}", TimeSpan.FromSeconds(30));
            Assert.Equal(restarts, int.Parse(query.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture));
            Assert.Equal(status.Services.Single().Restarts, restarts);
            var up = await QueryUntilAsync(http, port, "up{job=\"apphb\"}", TimeSpan.FromSeconds(10));
            Assert.Equal("1", up.GetProperty("value")[1].GetString());
            var timeout = await QueryUntilAsync(http, port, "apphb_watchdog_timeout_seconds", TimeSpan.FromSeconds(10));
            Assert.Equal(status.Watchdog.TimeoutSeconds.ToString(CultureInfo.InvariantCulture), timeout.GetProperty("value")[1].GetString());
            Assert.Equal(status.Watchdog.Backend, timeout.GetProperty("metric").GetProperty("backend").GetString());
        }
        finally
        {
            prometheus.Kill();
            await prometheus.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task The_shipped_alerting_rules_pass_promtool_unit_tests()
    {
        var rules = Path.Combine(RepositoryPaths.Root, "monitoring", "prometheus");
        var (check, checkOutput) = await ProcessRunner.RunAsync(Promtool, "check", "rules", Path.Combine(rules, "apphb-alerts.yml"));
        Assert.True(check == 0, checkOutput);
        var info = new ProcessStartInfo(Promtool) { WorkingDirectory = rules, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("test");
        info.ArgumentList.Add("rules");
        info.ArgumentList.Add("apphb-alerts.test.yml");
        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
    }

    private static async Task<JsonElement> QueryUntilAsync(HttpClient http, int port, string expression, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var json = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/api/v1/query?query={Uri.EscapeDataString(expression)}"));
                var result = JsonDocument.Parse(json).RootElement.GetProperty("data").GetProperty("result");
                if (result.GetArrayLength() > 0)
                {
                    return result[0].Clone();
                }
            }
            catch (HttpRequestException) when (watch.Elapsed < timeout)
            {
            }

            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"Prometheus returned nothing for {expression}");
            }

            await Task.Delay(250);
        }
    }

    private static async Task<(int Code, string Output)> RunWithInputAsync(string file, string input, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        await process.StandardInput.WriteAsync(input);
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }

}
