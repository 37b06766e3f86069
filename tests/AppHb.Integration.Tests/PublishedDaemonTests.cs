using System.Diagnostics;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>The daemon as it ships is compiled ahead of time (NativeAOT); what only reflection or the JIT would reach
/// is not there, which no test of the JIT build would notice. This publishes it and uses it for real (tests/run-all.sh
/// also runs the integration tests against it).</summary>
public class PublishedDaemonTests
{
    [Fact]
    public async Task The_native_daemon_starts_serves_and_reports()
    {
        using var directory = new TempDirectory();
        var output = directory.File("pub");
        using (var publish = Process.Start(new ProcessStartInfo("dotnet",
            ["publish", Path.Combine(RepositoryPaths.Root, "src", "AppHb.Daemon"), "-c", "Release", "-r", "linux-x64", "-o", output])
            { RedirectStandardOutput = true, RedirectStandardError = true })!)
        {
            var log = await publish.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            await publish.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(publish.ExitCode == 0, log);
            // No trimming or AOT warning: what they name would fail at run time.
            Assert.DoesNotContain(": warning IL", log, StringComparison.Ordinal);
        }

        // One native executable, no managed assembly beside it.
        Assert.Empty(Directory.GetFiles(output, "*.dll"));
        var magic = new byte[4];
        await using (var binary = File.OpenRead(Path.Combine(output, "apphbd")))
        {
            await binary.ReadExactlyAsync(magic, TestContext.Current.CancellationToken);
        }

        Assert.Equal("\u007fELF"u8.ToArray(), magic);
        var socket = directory.File("apphbd.sock");
        var config = directory.File("apphbd.yaml");
        await File.WriteAllTextAsync(config, $"socket:\n  path: {socket}\nwatchdog:\n  backend: none\n  timeout: 4s\n  period: 100ms\n", TestContext.Current.CancellationToken);
        var check = Process.Start(new ProcessStartInfo(Path.Combine(output, "apphbd"), ["--config", config, "--check-config"]) { RedirectStandardOutput = true })!;
        await check.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, check.ExitCode);

        using var daemon = Process.Start(new ProcessStartInfo(Path.Combine(output, "apphbd"), ["--config", config]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        daemon.OutputDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue(e.Data); } };
        daemon.BeginOutputReadLine();
        try
        {
            var watch = Stopwatch.StartNew();
            while (!File.Exists(socket) && watch.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }

            await using var client = new HeartbeatClient(new HeartbeatClientOptions
            {
                SocketPath = socket,
                Name = "shipped",
                Interval = TimeSpan.FromMilliseconds(300),
                WarnTime = TimeSpan.FromMilliseconds(100),
            });
            await client.RegisterAsync(TestContext.Current.CancellationToken);
            await using var events = new AppHbControl(socket).WatchEventsAsync(includeHistory: true, TestContext.Current.CancellationToken).GetAsyncEnumerator(TestContext.Current.CancellationToken);
            var kinds = new List<string>();
            while (!kinds.Contains("hung") && await events.MoveNextAsync())
            {
                kinds.Add(events.Current.Kind);
            }

            Assert.Equal(["registered", "warn", "hung"], kinds);
            var status = await new AppHbControl(socket).GetStatusAsync(TestContext.Current.CancellationToken);
            Assert.Equal("hung", Assert.Single(status.Clients).State);
            Assert.True(status.Watchdog.Tickles > 0);
        }
        finally
        {
            daemon.Kill();
            await daemon.WaitForExitAsync(TestContext.Current.CancellationToken);
        }

        // A hung client is logged as an error (fail:); a critical line or an exception would be the daemon itself failing.
        Assert.DoesNotContain(lines, l => l.Contains("crit:", StringComparison.Ordinal) || l.Contains("Exception", StringComparison.Ordinal));
    }
}

public class ClientPackageTests
{
    [Fact]
    public async Task Dotnet_pack_produces_the_client_package_with_its_docs_and_the_protocol_package()
    {
        using var directory = new TempDirectory();
        using (var pack = Process.Start(new ProcessStartInfo("dotnet", ["pack", Path.Combine(RepositoryPaths.Root, "AppHb.sln"), "-c", "Release", "-o", directory.Path])
            { RedirectStandardOutput = true, RedirectStandardError = true })!)
        {
            var log = await pack.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            await pack.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(pack.ExitCode == 0, log);
        }

        var client = Directory.GetFiles(directory.Path, "AppHb.Client.*.nupkg").Single();
        Assert.Single(Directory.GetFiles(directory.Path, "AppHb.Protocol.*.nupkg"));
        using var zip = System.IO.Compression.ZipFile.OpenRead(client);
        var entries = zip.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("lib/net10.0/AppHb.Client.dll", entries);
        Assert.Contains("lib/net10.0/AppHb.Client.xml", entries);
        using var nuspec = new StreamReader(zip.GetEntry("AppHb.Client.nuspec")!.Open());
        var text = await nuspec.ReadToEndAsync(TestContext.Current.CancellationToken);
        Assert.Contains("<dependency id=\"AppHb.Protocol\"", text, StringComparison.Ordinal);
        // Only the libraries apps link are packages; the daemon, CLI and tests are not.
        Assert.Equal(2, Directory.GetFiles(directory.Path, "*.nupkg").Length);
    }
}
