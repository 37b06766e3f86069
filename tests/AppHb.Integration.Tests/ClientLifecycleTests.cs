using System.Diagnostics;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

public class ClientLifecycleTests
{
    /// <summary>Reads the status until <paramref name="condition"/> holds; fails after 30 s naming <paramref name="what"/>.</summary>
    private static async Task<AppHb.Protocol.StatusDocument> UntilAsync(DaemonProcess daemon, Func<AppHb.Protocol.StatusDocument, bool> condition, string what)
    {
        var control = new AppHbControl(daemon.SocketPath);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var status = await control.GetStatusAsync(TestContext.Current.CancellationToken);
            if (condition(status))
            {
                return status;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"not within 30 s: {what}");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task Closing_without_unregistering_is_died_and_unregistering_is_not()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        var leaver = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "leaver" });
        await leaver.RegisterAsync(TestContext.Current.CancellationToken);
        await leaver.UnregisterAsync(TestContext.Current.CancellationToken);
        await leaver.DisposeAsync();

        await using (var raw = await RawConnection.ConnectAsync(daemon.SocketPath))
        {
            await raw.SendAsync(AppHb.Protocol.FrameWriter.ToArray(new AppHb.Protocol.RegisterRequest("dropper", "", 5000, 0), 1));
            Assert.Equal(AppHb.Protocol.FrameType.Registered, (await raw.ReceiveAsync())!.Value.Header.Type);
        }

        var died = await watcher.WaitForAsync("died", "dropper", TimeSpan.FromSeconds(5));
        Assert.Contains("connection closed", died.Event.Message, StringComparison.Ordinal);
        await watcher.WaitForAsync("unregistered", "leaver", TimeSpan.FromSeconds(5));
        Assert.Equal(0, watcher.Count("died", "leaver"));
    }

    [Fact]
    public async Task A_killed_client_process_is_reported_died_with_its_kernel_pid()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in new[] { RepositoryPaths.CliDll, "--socket", daemon.SocketPath, "hb", "victim", "--interval", "5s", "--warn", "0s", "--stdin" })
        {
            info.ArgumentList.Add(arg);
        }

        using var child = Process.Start(info)!;
        var registered = await watcher.WaitForAsync("registered", "victim", TimeSpan.FromSeconds(20));
        Assert.Equal(child.Id, registered.Event.Client!.Pid);
        await child.StandardInput.WriteLineAsync("beat");
        await child.StandardInput.FlushAsync(TestContext.Current.CancellationToken);
        child.Kill();
        var died = await watcher.WaitForAsync("died", "victim", TimeSpan.FromSeconds(5));
        Assert.Equal(child.Id, died.Event.Client!.Pid);
    }

    [Fact]
    public async Task Clients_reregister_by_themselves_after_the_daemon_crashes_and_restarts()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var client = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "survivor",
            Interval = TimeSpan.FromSeconds(2),
            WarnTime = TimeSpan.FromSeconds(1),
            AutoBeatPeriod = TimeSpan.FromMilliseconds(100),
            ReconnectDelay = TimeSpan.FromMilliseconds(50),
        });
        var reregistered = new TaskCompletionSource<HeartbeatRegistration>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reregistered += (_, registration) => reregistered.TrySetResult(registration);
        await client.RegisterAsync(TestContext.Current.CancellationToken);
        var first = client.Registration!;

        await daemon.KillAsync();
        await daemon.StartProcessAsync();
        var second = await reregistered.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Equal(first.Pid, second.Pid);

        var entry = await UntilAsync(daemon, status => status.Clients.Count == 1 && status.Clients[0].Beats > 0, "the survivor beating again");
        Assert.Equal("survivor", entry.Clients[0].Name);
        Assert.Equal("healthy", entry.Clients[0].State);
    }

    [Fact]
    public async Task A_thousand_concurrent_clients_register_beat_and_leave()
    {
        const int count = 1000;
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        var clients = Enumerable.Range(0, count).Select(i => new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "load",
            Instance = i.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Interval = TimeSpan.FromSeconds(3),
            WarnTime = TimeSpan.FromSeconds(2),
            RequestTimeout = TimeSpan.FromSeconds(30),
        })).ToList();
        await Task.WhenAll(clients.Select(c => c.RegisterAsync(TestContext.Current.CancellationToken)));
        for (var round = 0; round < 5; round++)
        {
            await Task.WhenAll(clients.Select(c => c.BeatAsync(TestContext.Current.CancellationToken).AsTask()));
        }

        // Beats are not acknowledged: the status connection may overtake the last ones.
        var status = await UntilAsync(daemon, s => s.Clients.Count == count && s.Clients.All(c => c.Beats == 5), "every client's five beats");
        Assert.Equal(count, status.Clients.Count);
        Assert.All(status.Clients, c => Assert.Equal("healthy", c.State));
        Assert.All(status.Clients, c => Assert.Equal(5, c.Beats));
        Assert.Equal(count, status.Clients.Select(c => c.Instance).Distinct().Count());
        Assert.Equal(0, watcher.Count("hung") + watcher.Count("warn"));

        await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        await UntilAsync(daemon, s => s.Clients.Count == 0, "every client gone");
        await watcher.WaitForAsync(e => e.Kind == "unregistered" && watcher.Count("unregistered", "load") == count, TimeSpan.FromSeconds(30));
        Assert.Equal(count, watcher.Count("unregistered", "load"));
        Assert.Empty((await new AppHbControl(daemon.SocketPath).GetStatusAsync(TestContext.Current.CancellationToken)).Clients);
    }
}

public class ProcessGoneTests
{
    [Fact]
    public async Task A_registered_process_that_exits_while_another_holds_its_socket_is_died_at_once()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        // hbload registers each client from a child process, then the parent keeps the socket: exactly a client
        // that forked, passed its connection on, and died.
        var hbload = daemon.Directory.File("hbload");
        var compile = Process.Start("cc", ["-O2", "-o", hbload, Path.Combine(RepositoryPaths.Root, "tests", "AppHb.Benchmarks", "native", "hbload.c")])!;
        await compile.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, compile.ExitCode);
        using var holder = Process.Start(new ProcessStartInfo(hbload, ["apphb", daemon.SocketPath, "1", "60000", "0", "stall", "0", "30"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var registered = await watcher.WaitForAsync("registered", "load", TimeSpan.FromSeconds(10));
        var registrant = registered.Event.Client!.Pid;
        Assert.NotEqual(holder.Id, registrant);

        var killedAt = Stopwatch.GetTimestamp();
        Process.GetProcessById(registrant).Kill();
        var died = await watcher.WaitForAsync("died", "load", TimeSpan.FromSeconds(5));
        Assert.Contains($"process {registrant} exited", died.Event.Message, StringComparison.Ordinal);
        Assert.True(Stopwatch.GetElapsedTime(killedAt, died.ArrivedAt) < TimeSpan.FromSeconds(1));
        Assert.False(holder.HasExited, "the connection must still be open: death was learned from the process, not the socket");
        holder.Kill();
        await holder.WaitForExitAsync(TestContext.Current.CancellationToken);
    }
}
