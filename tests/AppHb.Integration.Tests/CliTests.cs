using System.Diagnostics;
using System.Text.Json;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>apphbctl and apphbd as a user runs them.</summary>
public class CliTests
{
    [Fact]
    public async Task Status_json_lists_the_clients_an_hb_script_registered_and_beat_per_line()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        using var hb = Start(RepositoryPaths.CliDll, "--socket", daemon.SocketPath, "hb", "backup", "--instance", "nightly",
            "--interval", "10s", "--warn", "5s", "--stdin");
        var registered = await hb.StandardError.ReadLineAsync(TestContext.Current.CancellationToken);
        Assert.Contains("registered backup", registered, StringComparison.Ordinal);
        for (var i = 0; i < 3; i++)
        {
            await hb.StandardInput.WriteLineAsync("step");
        }

        await hb.StandardInput.FlushAsync(TestContext.Current.CancellationToken);
        // The three beats travel through the hb process: wait until apphbd has them all.
        var watch = Stopwatch.StartNew();
        while ((await new AppHb.Client.AppHbControl(daemon.SocketPath).GetStatusAsync()).Clients.SingleOrDefault()?.Beats < 3)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "apphbd never counted the script's three beats");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        var (code, output, _) = await RunAsync(RepositoryPaths.CliDll, "--socket", daemon.SocketPath, "status", "--json");
        Assert.Equal(0, code);
        var status = JsonSerializer.Deserialize(output, ProtocolJsonContext.Default.StatusDocument)!;
        var client = Assert.Single(status.Clients);
        Assert.Equal(("backup", "nightly", 3L, hb.Id), (client.Name, client.Instance, client.Beats, client.Pid));
        Assert.Equal("none", status.Watchdog.Backend);
        Assert.True(status.Watchdog.Tickles > 0);

        hb.StandardInput.Close();
        await hb.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, hb.ExitCode);
        var (_, events, _) = await RunAsync(RepositoryPaths.CliDll, "--socket", daemon.SocketPath, "events");
        Assert.Contains("registered", events, StringComparison.Ordinal);
        Assert.Contains("client backup/nightly", events, StringComparison.Ordinal);
        Assert.Contains("unregistered", events, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_text_shows_the_watchdog_and_a_client_table()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        var (code, output, _) = await RunAsync(RepositoryPaths.CliDll, "--socket", daemon.SocketPath, "status");
        Assert.Equal(0, code);
        Assert.Contains("watchdog none", output, StringComparison.Ordinal);
        Assert.Contains("no clients", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unreachable_daemon_exits_1_with_a_clear_message()
    {
        var (code, _, error) = await RunAsync(RepositoryPaths.CliDll, "--socket", "/tmp/apphb-none/nothing.sock", "status");
        Assert.Equal(1, code);
        Assert.Contains("the socket does not exist (is apphbd running?)", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_config_exits_non_zero_listing_every_error_with_its_line()
    {
        using var directory = new TempDirectory();
        var config = directory.File("bad.yaml");
        await File.WriteAllTextAsync(config, "watchdog:\n  backend: hardware\n  period: often\n", TestContext.Current.CancellationToken);
        var (code, _, error) = await RunAsync(RepositoryPaths.DaemonDll, "--config", config, "--check-config");
        Assert.Equal(2, code);
        Assert.Contains($"{config}:2:12: watchdog.backend: \"hardware\" is not valid; use one of: none, linux, gpio", error, StringComparison.Ordinal);
        Assert.Contains($"{config}:3:11: watchdog.period: \"often\" is not a duration", error, StringComparison.Ordinal);

        await File.WriteAllTextAsync(config, "watchdog:\n  backend: none\n", TestContext.Current.CancellationToken);
        var (ok, output, _) = await RunAsync(RepositoryPaths.DaemonDll, "--config", config, "--check-config");
        Assert.Equal(0, ok);
        Assert.Contains("configuration is valid", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_daemon_refuses_to_start_on_a_socket_another_daemon_serves()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        var (code, _, error) = await RunAsync(RepositoryPaths.DaemonDll, "--config", daemon.ConfigPath);
        Assert.Equal(1, code);
        Assert.Contains("another apphbd is already listening", error, StringComparison.Ordinal);
        Assert.True(daemon.IsRunning);
    }

    [Fact]
    public async Task Orderly_stop_disarms_the_watchdog_and_exits_zero()
    {
        var daemon = await DaemonProcess.StartAsync();
        Assert.Equal(0, await daemon.StopAsync());
        Assert.Contains(daemon.Lines, l => l.Contains("Watchdog disarmed (magic close) on orderly stop", StringComparison.Ordinal));
        Assert.False(File.Exists(daemon.SocketPath));
        await daemon.DisposeAsync();
    }

    private static bool SigIntIgnoredHere()
    {
        var ignored = File.ReadLines("/proc/self/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))["SigIgn:".Length..].Trim();
        return (ulong.Parse(ignored, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & (1UL << (2 - 1))) != 0;
    }

    [Fact]
    public async Task The_demo_shows_warn_hung_and_recovered()
    {
        using var demo = Start(RepositoryPaths.DaemonDll, "--demo");
        // Both streams are drained to the end, so a full pipe can never hold up the daemon's log or its exit.
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var recovered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task DrainAsync(StreamReader reader)
        {
            while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
            {
                lines.Enqueue(line);
                if (line.Contains("flaky (pid", StringComparison.Ordinal) && line.Contains("recovered", StringComparison.Ordinal))
                {
                    recovered.TrySetResult();
                }
            }
        }

        var drained = Task.WhenAll(DrainAsync(demo.StandardOutput), DrainAsync(demo.StandardError));
        var saw = await Task.WhenAny(recovered.Task, Task.Delay(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken)) == recovered.Task;
        // Ctrl-C, as a user stops the demo; unless this test runs with SIGINT ignored (started in the background by a
        // non-interactive shell), which the daemon inherits and rightly keeps: then SIGTERM, the same orderly stop.
        _ = ProcessRunner.Signal(demo.Id, SigIntIgnoredHere() ? 15 : 2);
        var exited = demo.WaitForExitAsync(TestContext.Current.CancellationToken);
        if (await Task.WhenAny(exited, Task.Delay(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken)) != exited)
        {
            demo.Kill(entireProcessTree: true);
            Assert.Fail($"apphbd --demo did not exit within 60 s of SIGINT; it said:\n{string.Join('\n', lines)}");
        }

        await drained;
        var all = string.Join('\n', lines);
        Assert.True(saw, $"no recovered event within 60 s; apphbd said:\n{all}");
        Assert.Contains("client flaky (pid", all, StringComparison.Ordinal);
        Assert.Contains("is late", all, StringComparison.Ordinal);
        Assert.Contains("is hung", all, StringComparison.Ordinal);
        Assert.Equal(0, demo.ExitCode);
    }

    private static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        using var process = Start(args);
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output, await error);
    }
}
