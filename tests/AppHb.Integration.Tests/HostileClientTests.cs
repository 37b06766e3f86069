using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using AppHb.Client;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>apphbd against clients that hold frames open, flood it with connections, stop reading, or arrive while
/// it stops: it never dies, never loses anything silently, and every refusal says why (docs/protocol.md, "Limits and
/// timeouts").</summary>
public sealed class HostileClientTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static async Task<(FrameHeader Header, byte[] Payload)> ExpectErrorAsync(RawConnection raw, ErrorCode code, TimeSpan? timeout = null)
    {
        var reply = await raw.ReceiveAsync(timeout ?? Bound);
        Assert.True(reply is not null, $"the daemon closed without the {code} error frame");
        Assert.Equal(FrameType.Error, reply.Value.Header.Type);
        Assert.Equal(code, ErrorReply.Read(reply.Value.Payload).Code);
        return reply.Value;
    }

    [Fact]
    public async Task A_partial_frame_is_closed_with_TimedOut_and_an_idle_connection_is_not()
    {
        await using var daemon = await DaemonProcess.StartAsync("clients:\n  read-timeout: 500ms\n");
        await using var idle = await RawConnection.ConnectAsync(daemon.SocketPath);
        await idle.SendAsync(FrameWriter.ToArray(new RegisterRequest("idle", string.Empty, 3_600_000, 0), 1));
        Assert.Equal(FrameType.Registered, (await idle.ReceiveAsync(Bound))!.Value.Header.Type);

        await using var partial = await RawConnection.ConnectAsync(daemon.SocketPath);
        var register = FrameWriter.ToArray(new RegisterRequest("slow", string.Empty, 1000, 0), 2);
        await partial.SendAsync(register.AsMemory(0, 7));
        var error = await ExpectErrorAsync(partial, ErrorCode.TimedOut);
        Assert.Equal(0u, error.Header.Sequence);
        Assert.Contains("500 ms", ErrorReply.Read(error.Payload).Message, StringComparison.Ordinal);
        Assert.True(await partial.IsClosedByPeerAsync(Bound));

        // The idle client waited longer than the timeout too: it is still registered and may beat.
        await idle.SendAsync(FrameWriter.EmptyToArray(FrameType.Beat, 3, FrameFlags.AckRequested));
        Assert.Equal(FrameType.Ok, (await idle.ReceiveAsync(Bound))!.Value.Header.Type);
        Assert.Contains((await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Clients, c => c.Name == "idle");
    }

    [Fact]
    public async Task Values_out_of_range_are_answered_and_the_connection_stays_open()
    {
        await using var daemon = await DaemonProcess.StartAsync("services:\n  one:\n    command: [/bin/sleep, \"1000\"]\n");
        await using var raw = await RawConnection.ConnectAsync(daemon.SocketPath);
        await raw.SendAsync(FrameWriter.ToArray(new RegisterRequest(string.Empty, string.Empty, 1000, 0), 3));
        var empty = await ExpectErrorAsync(raw, ErrorCode.InvalidArgument);
        Assert.Equal(3u, empty.Header.Sequence);
        Assert.Contains("'name' must not be empty", ErrorReply.Read(empty.Payload).Message, StringComparison.Ordinal);

        // A Control action outside 1-13 (the test runs as root, who may send Control): answered, still open.
        var control = FrameWriter.ToArray(new ControlRequest(ControlAction.Start, "one", 0), 4);
        control[FrameFormat.HeaderSize] = 14;
        await raw.SendAsync(control);
        Assert.Contains("'action' 14 is not 1 (start) to 13 (replication repair)", ErrorReply.Read((await ExpectErrorAsync(raw, ErrorCode.InvalidArgument)).Payload).Message, StringComparison.Ordinal);

        // A pair action on a single node: refused with the reason, still open.
        await raw.SendAsync(FrameWriter.ToArray(new ControlRequest(ControlAction.Switchover, string.Empty, 0), 6));
        Assert.Contains("not part of a pair", ErrorReply.Read((await ExpectErrorAsync(raw, ErrorCode.Failed)).Payload).Message, StringComparison.Ordinal);

        await raw.SendAsync(FrameWriter.ToArray(new RegisterRequest("fine", string.Empty, 1000, 0), 5));
        var registered = (await raw.ReceiveAsync(Bound))!.Value;
        Assert.Equal((FrameType.Registered, 5u), (registered.Header.Type, registered.Header.Sequence));
    }

    [Fact]
    public async Task A_peer_that_does_not_read_its_replies_is_closed_after_the_send_timeout_while_beats_go_on()
    {
        await using var daemon = await DaemonProcess.StartAsync("clients:\n  send-timeout: 500ms\n");
        await using var beating = await RawConnection.ConnectAsync(daemon.SocketPath);
        await beating.SendAsync(FrameWriter.ToArray(new RegisterRequest("beating", string.Empty, 60_000, 0), 1));
        Assert.Equal(FrameType.Registered, (await beating.ReceiveAsync(Bound))!.Value.Header.Type);

        // Thousands of status requests, none of their replies read: the socket's buffer fills, the loop stops reading
        // this peer, and the send timeout closes it.
        await using var deaf = await RawConnection.ConnectAsync(daemon.SocketPath);
        deaf.Socket.ReceiveBufferSize = 4096;
        var requests = new byte[2000 * FrameFormat.HeaderSize];
        for (var i = 0; i < 2000; i++)
        {
            FrameWriter.EmptyToArray(FrameType.StatusRequest, (uint)i + 1).CopyTo(requests, i * FrameFormat.HeaderSize);
        }

        await deaf.SendAsync(requests);
        // Three send timeouts long, beats are acknowledged as usual.
        var watch = Stopwatch.StartNew();
        var sequence = 2u;
        while (watch.Elapsed < TimeSpan.FromSeconds(1.5))
        {
            await beating.SendAsync(FrameWriter.EmptyToArray(FrameType.Beat, sequence, FrameFlags.AckRequested));
            var ack = (await beating.ReceiveAsync(Bound))!.Value;
            Assert.Equal((FrameType.Ok, sequence), (ack.Header.Type, ack.Header.Sequence));
            sequence++;
            await Task.Delay(50);
        }

        // Now read what it was sent: some of the statuses, then the end (a reset: it closed with our requests unread),
        // long before the 2,000th.
        var statuses = 0;
        try
        {
            while (await deaf.ReceiveAsync(Bound) is { } reply)
            {
                Assert.Equal(FrameType.Status, reply.Header.Type);
                statuses++;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
        }

        Assert.InRange(statuses, 0, 1999);
        Assert.Contains((await new AppHbControl(daemon.SocketPath).GetStatusAsync()).Clients, c => c.Name == "beating");
    }

    [Fact]
    public async Task A_peer_that_shuts_down_its_sending_side_still_gets_its_status()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var raw = await RawConnection.ConnectAsync(daemon.SocketPath);
        await raw.SendAsync(FrameWriter.EmptyToArray(FrameType.StatusRequest, 7));
        raw.Socket.Shutdown(SocketShutdown.Send);
        var status = (await raw.ReceiveAsync(Bound))!.Value;
        Assert.Equal((FrameType.Status, 7u), (status.Header.Type, status.Header.Sequence));
        Assert.True(await raw.IsClosedByPeerAsync(Bound));
    }

    [Fact]
    public async Task A_request_over_one_KiB_is_refused_from_its_length_alone()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var raw = await RawConnection.ConnectAsync(daemon.SocketPath);
        var prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, 2000);
        await raw.SendAsync(prefix);
        var error = await ExpectErrorAsync(raw, ErrorCode.Oversized);
        Assert.Contains("exceeds the maximum of 1020 bytes", ErrorReply.Read(error.Payload).Message, StringComparison.Ordinal);
        Assert.True(await raw.IsClosedByPeerAsync(Bound));
    }

    [Fact]
    public async Task A_subscriber_that_stops_reading_is_told_exactly_which_events_it_lost()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var stuck = await RawConnection.ConnectAsync(daemon.SocketPath);
        stuck.Socket.ReceiveBufferSize = 4096;
        await stuck.SendAsync(FrameWriter.EmptyToArray(FrameType.Subscribe, 1));
        Assert.Equal(FrameType.Ok, (await stuck.ReceiveAsync(Bound))!.Value.Header.Type);

        // 6,000 register/unregister pairs: far more than the 4,096 frames of backlog a watcher may hold.
        await using (var churn = await RawConnection.ConnectAsync(daemon.SocketPath))
        {
            for (var i = 0; i < 6000; i++)
            {
                await using var client = await RawConnection.ConnectAsync(daemon.SocketPath);
                byte[] both = [.. FrameWriter.ToArray(new RegisterRequest("churn", string.Empty, 60_000, 0), 1), .. FrameWriter.EmptyToArray(FrameType.Unregister, 2)];
                await client.SendAsync(both);
                await client.ReceiveAsync(Bound);
                await client.ReceiveAsync(Bound);
            }

            // Now read everything, in the background: events in order, with the gap said where it is. Markers are
            // published until one gets through (the first ones may find the backlog still full, and be lost too).
            var sequences = new List<long>();
            var lost = new List<EventsLostReply>();
            var reading = Task.Run(async () =>
            {
                while (true)
                {
                    var frame = (await stuck.ReceiveAsync(Bound))!.Value;
                    if (frame.Header.Type == FrameType.EventsLost)
                    {
                        lock (lost)
                        {
                            lost.Add(EventsLostReply.Read(frame.Payload));
                        }

                        continue;
                    }

                    Assert.Equal(FrameType.Event, frame.Header.Type);
                    var e = ProtocolJsonContext.ReadEvent(frame.Payload);
                    lock (lost)
                    {
                        sequences.Add(e.Sequence);
                    }

                    if (e.Kind == "registered" && e.Client?.Name == "marker")
                    {
                        return;
                    }
                }
            });
            var markers = new List<RawConnection>();
            var watch = Stopwatch.StartNew();
            while (!reading.IsCompleted && watch.Elapsed < Bound)
            {
                var marker = await RawConnection.ConnectAsync(daemon.SocketPath);
                markers.Add(marker);
                await marker.SendAsync(FrameWriter.ToArray(new RegisterRequest("marker", markers.Count.ToString(CultureInfo.InvariantCulture), 60_000, 0), 1));
                await Task.WhenAny(reading, Task.Delay(200));
            }

            await reading;
            foreach (var marker in markers)
            {
                await marker.DisposeAsync();
            }

            Assert.NotEmpty(lost);
            // Every sequence from the first received to the last is either received or named as lost, once.
            var covered = sequences.Concat(lost.SelectMany(l => Enumerable.Range(0, (int)l.Count).Select(k => l.FirstSequence + k))).Order().ToList();
            Assert.Equal(Enumerable.Range(0, (int)(covered[^1] - covered[0] + 1)).Select(k => covered[0] + k), covered);
        }

        Assert.True(daemon.IsRunning);
    }

    [Fact]
    public async Task Connections_beyond_a_uids_limit_are_refused_and_root_may_still_ask_for_status()
    {
        await using var daemon = await DaemonProcess.StartAsync("clients:\n  max-connections-per-uid: 5\nmetrics:\n  listen: 127.0.0.1:0\n");
        var metrics = new Uri(System.Text.RegularExpressions.Regex.Match(await daemon.WaitForLineAsync("Prometheus scrapes", Bound), @"http://\S+/metrics").Value);
        OpenToEveryone(daemon);
        using var nobody = ConnectionHolder.Start(daemon.SocketPath, 8, uid: 65534);
        var verdicts = await nobody.VerdictsAsync();
        Assert.Equal(5, verdicts.Count(v => v == "open"));
        Assert.Equal(3, verdicts.Count(v => v.StartsWith("refused 7 ", StringComparison.Ordinal) && v.Contains("maximum of 5 connections", StringComparison.Ordinal)));

        // The five held (silent: never a byte sent) count as open connections, the three as refused.
        using (var http = new HttpClient())
        {
            var text = await http.GetStringAsync(metrics, TestContext.Current.CancellationToken);
            Assert.Contains("\napphb_client_connections 5\n", text, StringComparison.Ordinal);
            Assert.Contains("\napphb_client_connections_refused_total 3\n", text, StringComparison.Ordinal);
        }

        // Root, beyond the limit too, still gets status; registering is refused on that connection.
        var rootConnections = new List<RawConnection>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                rootConnections.Add(await RawConnection.ConnectAsync(daemon.SocketPath));
            }

            var sixth = rootConnections[^1];
            await sixth.SendAsync(FrameWriter.EmptyToArray(FrameType.StatusRequest, 1));
            Assert.Equal(FrameType.Status, (await sixth.ReceiveAsync(Bound))!.Value.Header.Type);
            await sixth.SendAsync(FrameWriter.ToArray(new RegisterRequest("over", string.Empty, 1000, 0), 2));
            Assert.Contains("may only ask for status and control", ErrorReply.Read((await ExpectErrorAsync(sixth, ErrorCode.LimitReached)).Payload).Message, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var connection in rootConnections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task At_the_open_file_limit_new_connections_are_refused_at_once_and_the_daemon_serves_on()
    {
        await using var daemon = await DaemonProcess.StartAsync(openFileLimit: 300);
        OpenToEveryone(daemon);
        await using var good = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "good", Interval = TimeSpan.FromSeconds(30) });
        await good.RegisterAsync(TestContext.Current.CancellationToken);

        // Far more connections than 300 descriptors, held open, from another user.
        using var flood = ConnectionHolder.Start(daemon.SocketPath, 600, uid: 65534);
        var verdicts = await flood.VerdictsAsync();
        var refused = verdicts.Count(v => v.StartsWith("refused 7 ", StringComparison.Ordinal) && v.Contains("open-file limit", StringComparison.Ordinal));
        Assert.True(refused > 100, $"only {refused} refused at the limit: {string.Join(", ", verdicts.GroupBy(v => v.Split(' ')[0]).Select(g => $"{g.Key} {g.Count()}"))}");
        Assert.DoesNotContain(verdicts, v => v == "no answer");
        await daemon.WaitForLineAsync("at its open-file limit", Bound);
        // The flood was refused short of the limit: apphbd keeps descriptors free for its own work (a thread the
        // runtime starts opens a pipe: at the limit itself, apphbd died with "Out of memory.").
        var held = Directory.GetFiles($"/proc/{daemon.Pid}/fd").Length;
        Assert.True(held <= 300 - 16, $"apphbd holds {held} of its 300 descriptors under the flood");

        // Those it has are served; root is served.
        await good.BeatAsync(TestContext.Current.CancellationToken);
        StatusDocument status;
        try
        {
            status = await new AppHbControl(daemon.SocketPath).GetStatusAsync(TestContext.Current.CancellationToken);
        }
        catch (AppHbException e)
        {
            throw new InvalidOperationException($"{e.Message}; apphbd said:\n{string.Join('\n', daemon.Lines.TakeLast(40))}", e);
        }

        Assert.Equal("healthy", status.Clients.Single(c => c.Name == "good").State);

        // The flood leaves: the daemon accepts everyone again and says the episode ended, once.
        flood.Release();
        // It closes them as it reads their ends: wait until its descriptors say it has (any number well below 300).
        var closing = Stopwatch.StartNew();
        while (Directory.GetFiles($"/proc/{daemon.Pid}/fd").Length > 150 && closing.Elapsed < Bound)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        using var after = ConnectionHolder.Start(daemon.SocketPath, 3, uid: 65534);
        Assert.All(await after.VerdictsAsync(), v => Assert.Equal("open", v));
        await daemon.WaitForLineAsync("Open files available again", Bound);
        Assert.Single(daemon.Lines, l => l.Contains("at its open-file limit", StringComparison.Ordinal));
        Assert.True(daemon.IsRunning);
    }

    [Fact]
    public async Task Stopping_refuses_newcomers_and_tells_every_open_connection()
    {
        // A service that ignores SIGTERM holds the stop open for about its 2 s stop timeout.
        await using var daemon = await DaemonProcess.StartAsync("""
            services:
              stubborn:
                command: [/bin/sh, -c, "trap '' TERM; while :; do sleep 1; done"]
                stop-timeout: 2s
            """);
        await using var client = await RawConnection.ConnectAsync(daemon.SocketPath);
        await client.SendAsync(FrameWriter.ToArray(new RegisterRequest("held", string.Empty, 60_000, 0), 1));
        Assert.Equal(FrameType.Registered, (await client.ReceiveAsync(Bound))!.Value.Header.Type);
        await using var watcher = await RawConnection.ConnectAsync(daemon.SocketPath);
        await watcher.SendAsync(FrameWriter.EmptyToArray(FrameType.Subscribe, 1));
        Assert.Equal(FrameType.Ok, (await watcher.ReceiveAsync(Bound))!.Value.Header.Type);
        // Connected, never a byte sent: held as a bare descriptor until it speaks, and told too.
        await using var silent = await RawConnection.ConnectAsync(daemon.SocketPath);

        var skip = daemon.Lines.Count;
        Assert.True(ProcessRunner.Signal(daemon.Pid, 15));
        // While the services stop: a newcomer is refused.
        await daemon.WaitForLineAsync("new registrations and subscriptions are refused", Bound, skip);
        await using (var late = await RawConnection.ConnectAsync(daemon.SocketPath))
        {
            try
            {
                await late.SendAsync(FrameWriter.ToArray(new RegisterRequest("late", string.Empty, 1000, 0), 9));
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.Shutdown or SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                // Refused at accept: the Error frame was written and the connection closed before this write.
            }

            Assert.Contains("shutting down", ErrorReply.Read((await ExpectErrorAsync(late, ErrorCode.ShuttingDown)).Payload).Message, StringComparison.Ordinal);
        }

        // The client library says the daemon's reason too, not the broken pipe its request may have met; five tries,
        // so that both orders (the refusal read before or after the Register was written) are likely to occur.
        for (var i = 0; i < 5; i++)
        {
            await using var refused = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = $"refused-{i}", Reconnect = false });
            var e = await Assert.ThrowsAnyAsync<AppHbException>(() => refused.RegisterAsync(TestContext.Current.CancellationToken));
            Assert.True(e.Code == ErrorCode.ShuttingDown, e.ToString());
            var status = await Assert.ThrowsAnyAsync<AppHbException>(() => new AppHbControl(daemon.SocketPath).GetStatusAsync(TestContext.Current.CancellationToken));
            Assert.True(status.Code == ErrorCode.ShuttingDown, status.ToString());
        }

        // At the end, the open connections are told, then closed.
        var told = await ExpectErrorAsync(client, ErrorCode.ShuttingDown);
        Assert.Equal(0u, told.Header.Sequence);
        await ExpectErrorAsync(silent, ErrorCode.ShuttingDown);
        Assert.True(await silent.IsClosedByPeerAsync(Bound));
        while ((await watcher.ReceiveAsync(Bound)) is { } frame)
        {
            if (frame.Header.Type == FrameType.Error)
            {
                Assert.Equal(ErrorCode.ShuttingDown, ErrorReply.Read(frame.Payload).Code);
                return;
            }
        }

        Assert.Fail("the watcher was closed without a ShuttingDown frame");
    }

    /// <summary>Lets other users reach the daemon's socket (the tests run as root).</summary>
    private static void OpenToEveryone(DaemonProcess daemon)
    {
        File.SetUnixFileMode(daemon.SocketPath, (UnixFileMode)0x1FF);
        File.SetUnixFileMode(Path.GetDirectoryName(daemon.SocketPath)!, (UnixFileMode)0x1ED);
    }
}
