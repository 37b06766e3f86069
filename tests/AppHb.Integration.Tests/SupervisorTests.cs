using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using AppHb.Client;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>The supervisor against real child processes, real servers and real signals.</summary>
public sealed class SupervisorTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(15);

    private static Task<DaemonProcess> StartAsync(string services, TempDirectory? directory = null) =>
        DaemonProcess.StartAsync("services:\n" + services, realtime: false, directory: directory);

    private static async Task<ServiceStatus> ServiceAsync(DaemonProcess daemon, string name) =>
        (await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Services.Single(s => s.Name == name);

    private static async Task<ServiceStatus> UntilAsync(DaemonProcess daemon, string name, Func<ServiceStatus, bool> condition, TimeSpan? timeout = null)
    {
        var watch = Stopwatch.StartNew();
        ServiceStatus status;
        do
        {
            try
            {
                status = await ServiceAsync(daemon, name);
            }
            catch (AppHbException e)
            {
                throw new InvalidOperationException($"{e.Message}; apphbd said:\n{string.Join('\n', daemon.Lines)}", e);
            }

            if (condition(status))
            {
                return status;
            }

            await Task.Delay(20);
        }
        while (watch.Elapsed < (timeout ?? Long));

        throw new TimeoutException($"service {name} never reached the expected state; last: {status}");
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <see cref="Long"/> with <paramref name="what"/>.</summary>
    private static Task EventuallyAsync(Func<bool> condition, string what) => EventuallyAsync(() => Task.FromResult(condition()), what);

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > Long)
            {
                throw new TimeoutException($"not within {Long.TotalSeconds} s: {what}");
            }

            await Task.Delay(20);
        }
    }

    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);

    private static void Kill(int pid, int signal) => _ = ProcessRunner.Signal(pid, signal);

    private static List<int> ZombieChildren(int parent) =>
        Directory.EnumerateDirectories("/proc").Select(d => Path.GetFileName(d))
            .Where(n => int.TryParse(n, out _))
            .Select(n => { try { return File.ReadAllText($"/proc/{n}/stat"); } catch (IOException) { return string.Empty; } })
            .Where(stat => stat.Length > 0)
            .Select(stat => stat[(stat.LastIndexOf(')') + 2)..].Split(' '))
            .Where(f => f[0] == "Z" && f[1] == parent.ToString(CultureInfo.InvariantCulture))
            .Select(f => int.Parse(f[1], CultureInfo.InvariantCulture)).ToList();

    [Fact]
    public async Task A_killed_service_is_respawned_at_once_and_its_exit_is_reported()
    {
        await using var daemon = await StartAsync("""
              worker:
                command: [/bin/sleep, "1000"]
            """);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath);
        var first = await UntilAsync(daemon, "worker", s => s.State == "running");
        Kill(first.Pid!.Value, 9);
        var second = await UntilAsync(daemon, "worker", s => s.State == "running" && s.Pid != first.Pid);
        Assert.Equal(1, second.Restarts);
        Assert.Equal("signal 9 (SIGKILL)", second.LastExit);
        Assert.Equal((null, 9), (second.LastExitCode, second.LastExitSignal));
        var exited = await events.WaitForAsync(e => e.Kind == "service-exited" && e.Service == "worker", Long);
        Assert.Contains("SIGKILL", exited.Message, StringComparison.Ordinal);
        Assert.True(Alive(second.Pid!.Value));
        Assert.False(Alive(first.Pid.Value));
    }

    [Fact]
    public async Task Services_respawned_by_the_realtime_threads_run_on_the_normal_policy()
    {
        // apphbd's exit watcher and deadline loop run SCHED_FIFO; a service they respawn must not inherit it.
        await using var daemon = await DaemonProcess.StartAsync("""
            services:
              worker:
                command: [/bin/sleep, "1000"]
              delayed:
                command: [/bin/sleep, "1001"]
                restart:
                  delay: 50ms
            """, realtime: true);
        await daemon.WaitForLineAsync("exit watcher and respawn runs SCHED_FIFO", Long);
        foreach (var name in new[] { "worker", "delayed" })
        {
            var first = await UntilAsync(daemon, name, s => s.State == "running");
            Kill(first.Pid!.Value, 9);
            var second = await UntilAsync(daemon, name, s => s.State == "running" && s.Pid != first.Pid);
            var stat = await File.ReadAllTextAsync($"/proc/{second.Pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // Field 41 is the policy, 40 the realtime priority (proc(5)).
            Assert.Equal(("0", "0"), (fields[41 - 3], fields[40 - 3]));
        }
    }

    [Fact]
    public async Task A_chain_starts_in_order_and_restarts_after_its_root_dies()
    {
        // Declared out of order on purpose: the graph, not the file, decides.
        await using var daemon = await StartAsync("""
              c:
                command: [/bin/sleep, "1003"]
                requires: [b]
              a:
                command: [/bin/sleep, "1001"]
                readiness: 300ms
              b:
                command: [/bin/sleep, "1002"]
                requires: [a]
            """);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath, includeHistory: true);
        await events.WaitForAsync(e => e is { Kind: "service-ready", Service: "c" }, Long);
        var history = events.All.Select(e => e.Event).ToList();

        var startOrder = history.Where(e => e.Kind == "service-started").Select(e => e.Service).ToList();
        Assert.Equal(["a", "b", "c"], startOrder);
        // b started only once a was ready (a's readiness is a 300 ms delay).
        var aReady = history.First(e => e is { Kind: "service-ready", Service: "a" });
        var bStarted = history.First(e => e is { Kind: "service-started", Service: "b" });
        Assert.True(bStarted.Sequence > aReady.Sequence);

        var a = await ServiceAsync(daemon, "a");
        var b = await ServiceAsync(daemon, "b");
        var mark = history.Max(e => e.Sequence);
        Kill(a.Pid!.Value, 9);
        // Events arrive in order: once c is ready again, everything before it is here.
        await events.WaitForAsync(e => e is { Kind: "service-ready", Service: "c" }, Long, mark);
        Assert.NotEqual(b.Pid, (await ServiceAsync(daemon, "b")).Pid);
        var after = events.All.Select(e => e.Event).Where(e => e.Sequence > mark).ToList();
        var aRestarted = after.First(e => e is { Kind: "service-ready", Service: "a" }).Sequence;
        Assert.True(after.First(e => e is { Kind: "service-stopped", Service: "b" }).Sequence < after.First(e => e is { Kind: "service-started", Service: "b" }).Sequence);
        Assert.True(after.First(e => e is { Kind: "service-started", Service: "b" }).Sequence > aRestarted, "b restarts after a is ready again");
        Assert.True(after.First(e => e is { Kind: "service-started", Service: "c" }).Sequence > after.First(e => e is { Kind: "service-ready", Service: "b" }).Sequence);
        Assert.Equal(0, (await ServiceAsync(daemon, "b")).Restarts);
    }

    [Fact]
    public async Task The_magic_exit_code_means_do_not_restart()
    {
        await using var daemon = await StartAsync("""
              oneshot:
                command: [/bin/sh, -c, "exit 100"]
              custom:
                command: [/bin/sh, -c, "exit 42"]
                restart:
                  no-restart-exit-codes: [42]
            """);
        var oneshot = await UntilAsync(daemon, "oneshot", s => s.State == "exited");
        var custom = await UntilAsync(daemon, "custom", s => s.State == "exited");
        // "exited" is final: a restart would have been decided at the exit and shown as backoff or starting.
        Assert.Equal(0, oneshot.Restarts);
        Assert.Equal(0, custom.Restarts);
        Assert.False(oneshot.Wanted);
        Assert.Equal("exit code 42", custom.LastExit);
        Assert.Equal((42, (int?)null), (custom.LastExitCode, custom.LastExitSignal));
    }

    [Fact]
    public async Task Backoff_doubles_up_to_its_cap_and_resets_after_a_stable_run()
    {
        using var directory = new TempDirectory();
        var stable = directory.File("stable");
        await using var daemon = await StartAsync($"""
              flaky:
                command: [/bin/sh, -c, "if [ -e {stable} ]; then rm {stable}; sleep 1.2; fi; exit 1"]
                restart:
                  backoff: 100ms
                  max-delay: 400ms
                  stable-after: 1s
                  max-restarts: 1000
            """, directory);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath);
        var delays = new List<string>();
        long after = 0;
        for (var i = 0; i < 5; i++)
        {
            var e = await events.WaitForAsync(e => e.Kind == "service-restarting" && e.Service == "flaky", Long, after);
            after = e.Sequence;
            delays.Add(e.Message);
        }

        // Restarts 1.. of an unstable service: 100, 200, 400, 400 (the cap), ...
        var ms = delays.Select(d => d.Contains("restarting now", StringComparison.Ordinal) ? 0 : int.Parse(d.Split("restarting in ")[1].Split(' ')[0], CultureInfo.InvariantCulture)).ToList();
        Assert.Contains(ms, m => m == 400);
        for (var i = 1; i < ms.Count; i++)
        {
            Assert.True(ms[i] == Math.Min(400, Math.Max(100, ms[i - 1] * 2)), $"delays {string.Join(", ", ms)}");
        }

        // One run longer than stable-after: the next restart is immediate again.
        await File.WriteAllTextAsync(stable, string.Empty);
        var reset = await events.WaitForAsync(e => e.Kind == "service-restarting" && e.Service == "flaky" && e.Message.Contains("restarting now", StringComparison.Ordinal), Long, after);
        Assert.NotNull(reset);
    }

    [Fact]
    public async Task Too_many_restarts_in_the_window_give_up_and_what_requires_it_waits()
    {
        await using var daemon = await StartAsync("""
              broken:
                command: [/bin/sh, -c, "exit 3"]
                restart:
                  backoff: 10ms
                  max-restarts: 3
                  window: 60s
              front:
                command: [/bin/sleep, "1000"]
                requires: [broken]
            """);
        // It can give up before apphbd is even ready: read the history too.
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath, includeHistory: true);
        var failed = await UntilAsync(daemon, "broken", s => s.State == "failed");
        Assert.Equal(3, failed.Restarts);
        Assert.False(failed.Wanted);
        var gaveUp = await events.WaitForAsync(e => e.Kind == "service-gave-up" && e.Service == "broken", Long);
        Assert.Contains("3 restarts within 60 s", gaveUp.Message, StringComparison.Ordinal);
        var front = await ServiceAsync(daemon, "front");
        Assert.Equal("waiting", front.State);
        Assert.Equal("broken", front.WaitingFor);

        // An operator's start forgives the history: it runs (and fails) again.
        var result = await new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Start, "broken");
        Assert.StartsWith("broken:", result.Message, StringComparison.Ordinal);
        await events.WaitForAsync(e => e.Kind == "service-gave-up" && e.Service == "broken", Long, gaveUp.Sequence);
    }

    [Fact]
    public async Task A_SIGSTOPped_heartbeating_child_is_found_hung_and_restarted()
    {
        await using var daemon = await StartAsync($"""
              beater:
                command: [/usr/bin/dotnet, {RepositoryPaths.CliDll}, hb, beater, --interval, 1s, --warn, 0s, --period, 150ms]
                heartbeat:
                  interval: 1s
                stop-timeout: 3s
            """);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath);
        var watch = Stopwatch.StartNew();
        while (!(await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Clients.Any(c => c.Name == "beater") && watch.Elapsed < Long)
        {
            await Task.Delay(50);
        }

        var before = await ServiceAsync(daemon, "beater");
        Kill(before.Pid!.Value, 19);
        var lost = await events.WaitForAsync(e => e.Kind == "heartbeat-lost" && e.Service == "beater", Long);
        Assert.Contains("no heartbeat", lost.Message, StringComparison.Ordinal);
        // The stop signal is followed by SIGCONT, so the stopped process can act on it and leave.
        var after = await UntilAsync(daemon, "beater", s => s.State == "running" && s.Pid != before.Pid);
        Assert.Equal(1, after.Restarts);
        Assert.False(Alive(before.Pid.Value));
    }

    [Fact]
    public async Task An_unmodified_sd_notify_daemon_is_gated_on_READY_and_watched_by_WATCHDOG()
    {
        using var directory = new TempDirectory();
        var script = directory.File("notifyd.py");
        var environmentDump = directory.File("env");
        var stopBeating = directory.File("stop");
        await File.WriteAllTextAsync(script, $$"""
            import os, socket, time
            with open("{{environmentDump}}", "w") as f:
                f.write(f"{os.getpid()} {os.environ.get('WATCHDOG_PID')} {os.environ.get('WATCHDOG_USEC')}\n")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            addr = os.environ["NOTIFY_SOCKET"]
            time.sleep(0.3)
            s.sendto(b"READY=1\nSTATUS=serving", addr)
            while not os.path.exists("{{stopBeating}}"):
                s.sendto(b"WATCHDOG=1", addr)
                time.sleep(0.1)
            time.sleep(1000)
            """);
        await using var daemon = await StartAsync($"""
              notifyd:
                command: [/usr/bin/python3, {script}]
                readiness: notify
                heartbeat:
                  source: notify
                  interval: 600ms
              after:
                command: [/bin/sleep, "1000"]
                requires: [notifyd]
            """, directory);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath);
        var ready = await UntilAsync(daemon, "notifyd", s => s.State == "running");
        Assert.Equal("serving", ready.StatusText);
        var env = (await File.ReadAllTextAsync(environmentDump)).Trim().Split(' ');
        Assert.Equal(env[0], env[1]);
        Assert.Equal(ready.Pid!.Value.ToString(CultureInfo.InvariantCulture), env[0]);
        Assert.Equal("600000", env[2]);
        await UntilAsync(daemon, "after", s => s.State == "running");

        // Beats keep it healthy well past the interval: 15 beats at 100 ms are more than two 600 ms intervals...
        var control = new AppHbControl(daemon.SocketPath);
        await EventuallyAsync(async () => (await control.GetStatusAsync()).Clients.Any(c => c is { Name: "notifyd", Instance: "sd_notify", Beats: >= 15 }), "15 WATCHDOG=1 beats");
        Assert.Equal(0, events.Count("heartbeat-lost", "notifyd"));
        // ...and their absence restarts it.
        await File.WriteAllTextAsync(stopBeating, string.Empty);
        await events.WaitForAsync(e => e.Kind == "heartbeat-lost" && e.Service == "notifyd", Long);
        File.Delete(stopBeating);
        await UntilAsync(daemon, "notifyd", s => s.State == "running" && s.Pid != ready.Pid);
    }

    [Fact]
    public async Task A_forking_daemon_is_adopted_from_its_pidfile_and_a_reused_pid_is_not()
    {
        using var directory = new TempDirectory();
        var pidfile = directory.File("forker.pid");
        var startCount = directory.File("starts");

        // A stranger holds the pid written in a stale pidfile: it started after the file was written.
        await File.WriteAllTextAsync(pidfile, "1");
        File.SetLastWriteTimeUtc(pidfile, DateTime.UtcNow - TimeSpan.FromMinutes(5));
        using var stranger = Process.Start("/bin/sleep", "1000");
        await File.WriteAllTextAsync(pidfile, stranger.Id.ToString(CultureInfo.InvariantCulture));
        File.SetLastWriteTimeUtc(pidfile, DateTime.UtcNow - TimeSpan.FromMinutes(5));
        try
        {
            await using var daemon = await StartAsync($"""
                  forker:
                    command: [/bin/sh, -c, "echo x >> {startCount}; setsid /bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}"]
                    pidfile: {pidfile}
                """, directory);
            var first = await UntilAsync(daemon, "forker", s => s.State == "running");
            Assert.True(first.Adopted);
            Assert.NotEqual(stranger.Id, first.Pid);
            Assert.True(Alive(stranger.Id), "the stranger that reused the pid must not be touched");
            Assert.Single(File.ReadAllLines(startCount));

            // The adopted daemon dies: the start command runs again and the new pid is adopted.
            Kill(first.Pid!.Value, 9);
            var second = await UntilAsync(daemon, "forker", s => s.State == "running" && s.Pid != first.Pid);
            Assert.True(second.Adopted);
            Assert.Equal(2, File.ReadAllLines(startCount).Length);
            Assert.Equal(second.Pid!.Value.ToString(CultureInfo.InvariantCulture), (await File.ReadAllTextAsync(pidfile)).Trim());

            // apphbd itself restarts (crash): the live daemon behind a valid pidfile is adopted, not started twice.
            await daemon.KillAsync();
            await daemon.StartProcessAsync();
            var readopted = await UntilAsync(daemon, "forker", s => s.State == "running");
            Assert.Equal(second.Pid, readopted.Pid);
            Assert.Equal(2, File.ReadAllLines(startCount).Length);
        }
        finally
        {
            stranger.Kill();
        }
    }

    [Fact]
    public async Task TCP_and_HTTP_checks_make_a_real_server_ready_and_restart_it_when_it_stops_answering()
    {
        var port = LoopbackPorts.Free();
        using var directory = new TempDirectory();
        await File.WriteAllTextAsync(directory.File("health"), "all good");
        await using var daemon = await StartAsync($"""
              web:
                command: [/usr/bin/python3, -m, http.server, "{port}", --bind, 127.0.0.1, --directory, {directory.Path}]
                readiness: probe
                stop-timeout: 2s
                checks:
                  - name: port
                    type: tcp
                    address: 127.0.0.1:{port}
                    interval: 200ms
                    timeout: 150ms
                  - name: health
                    type: http
                    url: http://127.0.0.1:{port}/health
                    status: 200
                    body: "all g..d"
                    interval: 200ms
                    timeout: 150ms
                    failures: 2
                    depth: heavy
            """, directory);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath);
        var running = await UntilAsync(daemon, "web", s => s.State == "running" && s.Checks.All(c => c.Passing == true));
        Assert.Equal("heavy", running.Checks.Single(c => c.Name == "health").Depth);

        // Frozen: connects still succeed (the kernel accepts) but HTTP times out twice in a row: restart.
        Kill(running.Pid!.Value, 19);
        var failed = await events.WaitForAsync(e => e.Kind == "check-failed" && e.Service == "web", Long);
        Assert.Contains("check health failed 2 time(s)", failed.Message, StringComparison.Ordinal);
        var restarted = await UntilAsync(daemon, "web", s => s.State == "running" && s.Pid != running.Pid);
        Assert.Equal(1, restarted.Restarts);

        // The body pattern is checked too.
        await File.WriteAllTextAsync(directory.File("health"), "degraded");
        var mismatch = await events.WaitForAsync(e => e.Kind == "check-failed" && e.Service == "web", Long, failed.Sequence);
        Assert.Contains("does not match", mismatch.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Command_checks_follow_OCF_exit_codes_and_are_killed_at_their_timeout()
    {
        using var directory = new TempDirectory();
        var state = directory.File("state");
        await File.WriteAllTextAsync(state, "0");
        await using var daemon = await StartAsync($"""
              app:
                command: [/bin/sleep, "1000"]
                checks:
                  - name: ocf
                    type: command
                    command: [/bin/sh, -c, "echo level $OCF_CHECK_LEVEL; exit $(cat {state})"]
                    interval: 100ms
                    timeout: 90ms
                    failures: 2
                    action: alert
                  - name: slow
                    type: command
                    command: [/bin/sh, -c, "if [ -e {state}.slow ]; then exec /bin/sleep 77; fi"]
                    interval: 300ms
                    timeout: 200ms
                    failures: 1
                    action: alert
            """, directory);
        await using var events = await EventWatcher.StartAsync(daemon.SocketPath);
        await UntilAsync(daemon, "app", s => s.Checks.All(c => c.Passing == true));
        Assert.Contains("OCF_SUCCESS", (await ServiceAsync(daemon, "app")).Checks[0].LastMessage, StringComparison.Ordinal);
        Assert.Contains("level 0", (await ServiceAsync(daemon, "app")).Checks[0].LastMessage, StringComparison.Ordinal);

        await File.WriteAllTextAsync(state, "7");
        var notRunning = await events.WaitForAsync(e => e.Kind == "service-alert" && e.Service == "app", Long);
        Assert.Contains("OCF_NOT_RUNNING (7)", notRunning.Message, StringComparison.Ordinal);
        await File.WriteAllTextAsync(state, "1");
        await events.WaitForAsync(e => e.Kind == "check-recovered" && e.Service == "app", TimeSpan.FromSeconds(1), notRunning.Sequence)
            .ContinueWith(_ => { }, TaskScheduler.Default);
        await UntilAsync(daemon, "app", s => s.Checks[0].LastMessage.Contains("OCF failure (exit code 1)", StringComparison.Ordinal));

        // An alert changes nothing: the service kept its pid throughout.
        var app = await ServiceAsync(daemon, "app");
        Assert.Equal(0, app.Restarts);

        await File.WriteAllTextAsync(state + ".slow", string.Empty);
        var timedOut = await events.WaitForAsync(e => e.Kind == "service-alert" && e.Service == "app" && e.Message.Contains("timed out", StringComparison.Ordinal), Long);
        Assert.Contains("check slow", timedOut.Message, StringComparison.Ordinal);
        // The timed-out command and its process group are gone, not left running (a sleep of 77 s would be).
        await EventuallyAsync(() => !Directory.EnumerateDirectories("/proc").Any(d => int.TryParse(Path.GetFileName(d), out _) && ReadOrEmpty(d + "/cmdline") == "/bin/sleep\077\0"),
            "the timed-out check's sleep killed");
    }

    [Fact]
    public async Task An_LSB_script_status_is_a_check()
    {
        using var directory = new TempDirectory();
        var script = directory.File("init-script");
        var code = directory.File("code");
        await File.WriteAllTextAsync(code, "0");
        await File.WriteAllTextAsync(script, $"#!/bin/sh\n[ \"$1\" = status ] || exit 2\nexit $(cat {code})\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await using var daemon = await StartAsync($"""
              legacy:
                command: [/bin/sleep, "1000"]
                checks:
                  - type: lsb
                    script: {script}
                    interval: 100ms
                    timeout: 90ms
                    failures: 2
            """, directory);
        var first = await UntilAsync(daemon, "legacy", s => s.Checks.Single().Passing == true);
        await File.WriteAllTextAsync(code, "3");
        var restarted = await UntilAsync(daemon, "legacy", s => s.Restarts == 1 && s.State == "running");
        Assert.NotEqual(first.Pid, restarted.Pid);
    }

    [Fact]
    public async Task Reload_keeps_unchanged_services_restarts_changed_stops_removed_and_starts_added()
    {
        using var directory = new TempDirectory();
        await using var daemon = await StartAsync("""
              keep:
                command: [/bin/sleep, "1001"]
              change:
                command: [/bin/sleep, "1002"]
              remove:
                command: [/bin/sleep, "1003"]
            """, directory);
        var keep = await UntilAsync(daemon, "keep", s => s.State == "running");
        var change = await UntilAsync(daemon, "change", s => s.State == "running");
        var remove = await UntilAsync(daemon, "remove", s => s.State == "running");

        var config = await File.ReadAllTextAsync(daemon.ConfigPath);
        var head = config[..config.IndexOf("services:", StringComparison.Ordinal)];
        await File.WriteAllTextAsync(daemon.ConfigPath, head + """
            services:
              keep:
                command: [/bin/sleep, "1001"]
              change:
                command: [/bin/sleep, "2002"]
              add:
                command: [/bin/sleep, "1004"]
            """);
        var result = await new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Reload, string.Empty);
        Assert.Equal(3, result.Lines.Count);

        var status = await new AppHbControl(daemon.SocketPath).GetStatusAsync();
        Assert.Equal(keep.Pid, status.Services.Single(s => s.Name == "keep").Pid);
        Assert.DoesNotContain(status.Services, s => s.Name == "remove");
        Assert.False(Alive(remove.Pid!.Value));
        var changed = await UntilAsync(daemon, "change", s => s.State == "running");
        Assert.NotEqual(change.Pid, changed.Pid);
        Assert.Contains("2002", await File.ReadAllTextAsync($"/proc/{changed.Pid}/cmdline"), StringComparison.Ordinal);
        await UntilAsync(daemon, "add", s => s.State == "running");

        // A broken file changes nothing and says why.
        await File.WriteAllTextAsync(daemon.ConfigPath, head + "services:\n  bad:\n    command: [/nonexistent/x]\n    requires: [ghost]\n");
        var refused = await Assert.ThrowsAsync<AppHbException>(() => new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Reload, string.Empty));
        Assert.Contains("/nonexistent/x does not exist", refused.Message, StringComparison.Ordinal);
        Assert.Contains("ghost", refused.Message, StringComparison.Ordinal);
        Assert.Equal(keep.Pid, (await ServiceAsync(daemon, "keep")).Pid);
    }

    [Fact]
    public async Task Services_run_as_their_user_group_umask_directory_and_environment_with_output_to_a_file()
    {
        using var directory = new TempDirectory();
        var output = directory.File("out.log");
        await using var daemon = await StartAsync($"""
              who:
                command: [/bin/sh, -c, "id -u; id -g; id -G; umask; pwd; echo $GREETING; echo $APPHB_SERVICE; ls /proc/self/fd | wc -l; exec sleep 1000"]
                user: nobody
                group: nogroup
                umask: "0027"
                directory: /tmp
                environment:
                  GREETING: hello there
                output: {output}
            """, directory);
        await UntilAsync(daemon, "who", s => s.State == "running");
        await EventuallyAsync(() => File.Exists(output) && File.ReadAllLines(output).Length >= 8, "the service's eight lines of output");
        var lines = await File.ReadAllLinesAsync(output);
        Assert.Equal("65534", lines[0]);
        Assert.Equal("65534", lines[1]);
        Assert.Equal("65534", lines[2]);
        Assert.Equal("0027", lines[3]);
        Assert.Equal("/tmp", lines[4]);
        Assert.Equal("hello there", lines[5]);
        Assert.Equal("who", lines[6]);
        // 0, 1, 2 and the one ls opens to list the directory: no descriptor of apphbd (or inherited by it) leaked.
        Assert.Equal("4", lines[7].Trim());
        var logs = await new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Logs, "who", 3);
        Assert.Contains(output, logs.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Output_goes_to_the_log_line_by_line_and_to_apphbctl_logs()
    {
        await using var daemon = await StartAsync("""
              talker:
                command: [/bin/sh, -c, "echo first line; echo to stderr >&2; printf 'no newline'; exec sleep 1000"]
            """);
        await daemon.WaitForLineAsync("talker[", Long);
        await daemon.WaitForLineAsync("no newline", Long).ContinueWith(_ => { }, TaskScheduler.Default);
        var logs = await new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Logs, "talker", 10);
        Assert.Contains("first line", logs.Lines);
        Assert.Contains("to stderr", logs.Lines);
        Assert.Contains(daemon.Lines, l => l.Contains("talker[", StringComparison.Ordinal) && l.Contains("first line", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_service_ignoring_its_stop_signal_is_killed_with_its_group_at_the_stop_timeout()
    {
        await using var daemon = await StartAsync("""
              stubborn:
                command: [/bin/sh, -c, "trap '' TERM; /bin/sleep 1000 & wait"]
                stop-timeout: 400ms
            """);
        var running = await UntilAsync(daemon, "stubborn", s => s.State == "running");
        List<int> Group() => Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => int.TryParse(n, out _))
            .Select(int.Parse!).Where(pid => { try { return File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].Split(' ')[3] == running.Pid!.Value.ToString(CultureInfo.InvariantCulture); } catch (IOException) { return false; } })
            .ToList();
        await EventuallyAsync(() => Group().Count >= 2, "the shell and its sleep share the service's process group");
        var group = Group();
        var watch = Stopwatch.StartNew();
        var result = await new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Stop, "stubborn");
        Assert.Equal("stubborn: stopped", result.Message);
        // The stop waited out the timeout (the shell ignores TERM) before SIGKILL; the bound above is only a sanity check.
        Assert.True(watch.Elapsed.TotalMilliseconds >= 350, $"stopped after {watch.Elapsed.TotalMilliseconds:0} ms, before its stop timeout");
        await EventuallyAsync(() => group.All(pid => !Alive(pid)), "every process of the group killed");
    }

    [Fact]
    public async Task A_double_forked_grandchild_is_reparented_to_apphbd_and_reaped()
    {
        await using var daemon = await StartAsync("""
              forks:
                command: [/bin/sh, -c, "(setsid /bin/sleep 3 &); exec /bin/sleep 1000"]
            """);
        await UntilAsync(daemon, "forks", s => s.State == "running");
        List<int> SleepingChildren() => Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => int.TryParse(n, out _)).Select(int.Parse!)
            .Where(pid => { try { var f = File.ReadAllText($"/proc/{pid}/stat"); return f.Contains("(sleep)", StringComparison.Ordinal) && f.Split(") ")[1].Split(' ')[1] == daemon.Pid.ToString(CultureInfo.InvariantCulture); } catch (IOException) { return false; } })
            .ToList();
        // The service's own sleep (its direct child) plus the orphan, both children of apphbd now.
        await EventuallyAsync(() => SleepingChildren().Count == 2, "the orphaned sleep reparented to apphbd beside the service's own");
        // The orphan's end, 3 s in (long enough for a busy machine's poll to see it alive first): it is reaped, not
        // left a zombie.
        await EventuallyAsync(() => SleepingChildren().Count == 1, "the orphan's exit");
        await EventuallyAsync(() => ZombieChildren(daemon.Pid).Count == 0, "no zombie left");
    }

    [Fact]
    public async Task A_thousand_crash_cycles_leave_no_zombie_and_no_leaked_descriptor()
    {
        await using var daemon = await StartAsync("""
              crasher:
                command: [/bin/sh, -c, "(/bin/true &); exit 1"]
                restart:
                  backoff: 1ms
                  max-delay: 1ms
                  max-restarts: 100000
                  window: 1s
            """);
        await UntilAsync(daemon, "crasher", s => s.Restarts >= 20);
        var descriptorsBefore = Directory.GetFiles($"/proc/{daemon.Pid}/fd").Length;
        var done = await UntilAsync(daemon, "crasher", s => s.Restarts >= 1020, TimeSpan.FromSeconds(120));
        Assert.True(done.Restarts >= 1020);
        await new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Stop, "crasher");
        await EventuallyAsync(() => Directory.GetFiles($"/proc/{daemon.Pid}/fd").Length <= descriptorsBefore + 2,
            $"apphbd's descriptors back to at most {descriptorsBefore + 2}");
        await EventuallyAsync(() => ZombieChildren(daemon.Pid).Count == 0, "no zombie left");
    }

    [Fact]
    public async Task A_critical_service_that_gives_up_stops_the_services_and_then_the_watchdog_feeding()
    {
        await using var daemon = await StartAsync("""
              bystander:
                command: [/bin/sleep, "1000"]
              vital:
                command: [/bin/sh, -c, "exit 9"]
                critical: true
                restart:
                  backoff: 10ms
                  max-restarts: 2
            """);
        await daemon.WaitForLineAsync("NODE REBOOT", Long);
        await daemon.WaitForLineAsync("Watchdog feeding stopped", Long);
        var bystander = await ServiceAsync(daemon, "bystander");
        Assert.Equal("stopped", bystander.State);
        var status = await new AppHbControl(daemon.SocketPath).GetStatusAsync();
        // Three more withheld ticks prove the tickle loop went on deciding: it fed none of them.
        await EventuallyAsync(async () => (await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Watchdog.Withheld >= status.Watchdog.Withheld + 3, "three withheld tickles");
        Assert.Equal(status.Watchdog.Tickles, (await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Watchdog.Tickles);
    }

    [Fact]
    public async Task Control_is_refused_to_other_users_and_for_unknown_services()
    {
        await using var daemon = await StartAsync("""
              any:
                command: [/bin/sleep, "1000"]
            """);
        File.SetUnixFileMode(daemon.SocketPath, (UnixFileMode)0x1FF);
        File.SetUnixFileMode(Path.GetDirectoryName(daemon.SocketPath)!, (UnixFileMode)0x1ED);
        var unknown = await Assert.ThrowsAsync<AppHbException>(() => new AppHbControl(daemon.SocketPath).ControlAsync(ControlAction.Stop, "nope"));
        Assert.Equal(ErrorCode.UnknownService, unknown.Code);
        Assert.Contains("configured: any", unknown.Message, StringComparison.Ordinal);

        var (code, output) = await ProcessRunner.RunAsync("/usr/bin/env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp", "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
            "/usr/bin/dotnet", RepositoryPaths.CliDll, "-s", daemon.SocketPath, "stop", "any");
        Assert.Equal(1, code);
        Assert.Contains("PermissionDenied", output, StringComparison.Ordinal);
        Assert.Equal("running", (await ServiceAsync(daemon, "any")).State);
    }

    private static string ReadOrEmpty(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return string.Empty;
        }
    }

}
