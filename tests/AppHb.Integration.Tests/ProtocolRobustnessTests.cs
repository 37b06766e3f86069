using System.Buffers.Binary;
using System.Net.Sockets;
using AppHb.Client;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

public class ProtocolRobustnessTests
{
    public static TheoryData<string, string, ErrorCode, string> Violations => new()
    {
        { "oversized", "7FFFFFFF", ErrorCode.Oversized, "exceeds the maximum" },
        { "version", "00000008" + "09" + "02" + "0000" + "0000002A", ErrorCode.UnsupportedVersion, "version 9 is not supported" },
        { "unknown type", "00000008" + "01" + "55" + "0000" + "0000002A", ErrorCode.UnknownType, "frame type 0x55 is unknown" },
        { "reply type", "00000008" + "01" + "80" + "0000" + "0000002A", ErrorCode.UnknownType, "is a reply type" },
        { "beat first", "00000008" + "01" + "02" + "0000" + "0000002A", ErrorCode.OutOfOrder, "Beat frame is out of order: Register first" },
        { "truncated register", "0000000B" + "01" + "01" + "0000" + "0000002A" + "0005" + "61", ErrorCode.Malformed, "field 'name' needs 5 byte(s)" },
        { "beat with payload", "00000009" + "01" + "10" + "0000" + "0000002A" + "FF", ErrorCode.Malformed, "must have an empty payload" },
    };

    [Theory]
    [MemberData(nameof(Violations))]
    public async Task A_violation_gets_an_error_naming_it_then_only_that_connection_closes(string what, string hex, ErrorCode code, string fragment)
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var bystander = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "bystander" });
        await bystander.RegisterAsync(TestContext.Current.CancellationToken);

        await using var raw = await RawConnection.ConnectAsync(daemon.SocketPath);
        await raw.SendAsync(Convert.FromHexString(hex));
        var reply = await raw.ReceiveAsync();
        Assert.True(reply is not null, what);
        Assert.Equal(FrameType.Error, reply.Value.Header.Type);
        // The reply echoes the offending frame's sequence; an oversized prefix is refused before a header exists.
        Assert.Equal(what == "oversized" ? 0u : 42u, reply.Value.Header.Sequence);
        var error = ErrorReply.Read(reply.Value.Payload);
        Assert.Equal(code, error.Code);
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        Assert.True(await raw.IsClosedByPeerAsync(TimeSpan.FromSeconds(5)), "the daemon must close the offending connection");

        await bystander.BeatAsync(TestContext.Current.CancellationToken);
        var status = await new AppHbControl(daemon.SocketPath).GetStatusAsync(TestContext.Current.CancellationToken);
        Assert.Equal("healthy", Assert.Single(status.Clients).State);
        Assert.True(daemon.IsRunning);
    }

    [Fact]
    public async Task A_second_register_on_one_connection_is_out_of_order()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        await using var raw = await RawConnection.ConnectAsync(daemon.SocketPath);
        await raw.SendAsync(FrameWriter.ToArray(new RegisterRequest("once", "", 1000, 0), 1));
        Assert.Equal(FrameType.Registered, (await raw.ReceiveAsync())!.Value.Header.Type);
        await raw.SendAsync(FrameWriter.ToArray(new RegisterRequest("twice", "", 1000, 0), 2));
        var reply = (await raw.ReceiveAsync())!.Value;
        Assert.Equal(2u, reply.Header.Sequence);
        Assert.Equal(ErrorCode.OutOfOrder, ErrorReply.Read(reply.Payload).Code);
    }

    [Fact]
    public async Task A_hundred_thousand_random_and_mutated_frames_leave_the_daemon_serving_with_bounded_memory()
    {
        const int targetFrames = 100_000;
        const int abusers = 16;
        await using var daemon = await DaemonProcess.StartAsync();
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);
        var honest = Enumerable.Range(0, 20).Select(i => new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "honest",
            Instance = i.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Interval = TimeSpan.FromSeconds(2),
            WarnTime = TimeSpan.FromSeconds(1),
            AutoBeatPeriod = TimeSpan.FromMilliseconds(100),
        })).ToList();
        await Task.WhenAll(honest.Select(c => c.RegisterAsync(TestContext.Current.CancellationToken)));

        var sent = 0;
        var errorsReceived = 0;
        var rssSamples = new List<long>();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                rssSamples.Add(daemon.ResidentBytes());
                await Task.Delay(250, CancellationToken.None);
            }
        }, TestContext.Current.CancellationToken);

        await Task.WhenAll(Enumerable.Range(0, abusers).Select(seed => Task.Run(async () =>
        {
            var random = new Random(seed);
            while (Volatile.Read(ref sent) < targetFrames)
            {
                var (bytes, frames) = FrameFuzzer.Batch(random);
                using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(daemon.SocketPath));
                try
                {
                    await socket.SendAsync(bytes, SocketFlags.None);
                    socket.Shutdown(SocketShutdown.Send);
                    var buffer = new byte[4096];
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    int read;
                    while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
                    {
                        if (read >= 6 && buffer[5] == (byte)FrameType.Error)
                        {
                            Interlocked.Increment(ref errorsReceived);
                        }
                    }
                }
                catch (SocketException)
                {
                    // The daemon closed on us mid-send: the expected answer to garbage.
                }

                Interlocked.Add(ref sent, frames);
            }
        }, TestContext.Current.CancellationToken)));

        await sampling.CancelAsync();
        await sampler;
        Assert.True(sent >= targetFrames);
        Assert.True(errorsReceived > 1000, $"only {errorsReceived} error replies");
        Assert.True(daemon.IsRunning);

        var status = await new AppHbControl(daemon.SocketPath).GetStatusAsync(TestContext.Current.CancellationToken);
        var survivors = status.Clients.Where(c => c.Name == "honest").ToList();
        Assert.Equal(20, survivors.Count);
        Assert.All(survivors, c => Assert.Equal("healthy", c.State));
        // Not one false alarm: every honest client beat ten times per warn time, and beats go first (docs/protocol.md).
        Assert.Equal(0, watcher.Count("warn", "honest"));
        Assert.Equal(0, watcher.Count("hung", "honest") + watcher.Count("died", "honest"));

        // Bounded: no sample above 200 MB, and the second half of the run does not keep growing past the first.
        var max = rssSamples.Max();
        Assert.True(max < 200L * 1024 * 1024, $"RSS peaked at {max / 1024 / 1024} MB");
        var half = rssSamples.Count / 2;
        Assert.True(rssSamples.Skip(half).Max() < rssSamples.Take(half).Max() * 1.5 + 16L * 1024 * 1024,
            $"RSS kept growing: {string.Join(", ", rssSamples.Select(s => s / 1024 / 1024))} MB");
        await Task.WhenAll(honest.Select(c => c.DisposeAsync().AsTask()));
    }
}

public class SlowWatcherTests
{
    [Fact]
    public async Task A_watcher_that_never_reads_costs_others_nothing()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        // Subscribes, then never reads: its socket fills, its backlog fills, then it loses events.
        await using var stuck = await RawConnection.ConnectAsync(daemon.SocketPath);
        stuck.Socket.ReceiveBufferSize = 4096;
        await stuck.SendAsync(FrameWriter.EmptyToArray(FrameType.Subscribe, 1));
        await using var watcher = await EventWatcher.StartAsync(daemon.SocketPath);

        var clients = Enumerable.Range(0, 300).Select(i => new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = daemon.SocketPath,
            Name = "churn",
            Instance = i.ToString(System.Globalization.CultureInfo.InvariantCulture),
        })).ToList();
        for (var round = 0; round < 20; round++)
        {
            await Task.WhenAll(clients.Select(c => c.RegisterAsync(TestContext.Current.CancellationToken)));
            await Task.WhenAll(clients.Select(c => c.UnregisterAsync(TestContext.Current.CancellationToken)));
        }

        // 12,000 events went out; the reading watcher saw every one, the daemon kept serving.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (watcher.Count("unregistered", "churn") < 6000 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        Assert.Equal(6000, watcher.Count("registered", "churn"));
        Assert.Equal(6000, watcher.Count("unregistered", "churn"));
        Assert.True(daemon.IsRunning);
        await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
    }
}
