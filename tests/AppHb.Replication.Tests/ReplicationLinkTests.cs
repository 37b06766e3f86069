using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The replication transport over real TCP on loopback addresses: the active node connects and reconnects,
/// the standby listens and serves its peer only, and a connection cut in the middle resumes where the replica stands.</summary>
public sealed class ReplicationLinkTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly DataGeneration Generation = new(1, 1);
    private static readonly IPAddress ActiveAddress = IPAddress.Parse("127.0.0.1");
    private static readonly IPAddress StandbyAddress = IPAddress.Parse("127.0.0.2");
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);
    private readonly TempDirectory _directory = new();
    private readonly ConcurrentQueue<string> _ended = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _running = [];

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            Task.WaitAll([.. _running], Patience);
        }
        catch (AggregateException)
        {
        }

        _stop.Dispose();
        _directory.Dispose();
    }

    private string Replica => _directory.File("replica");

    private Task Listen(IPEndPoint at, IPAddress peer, CutApplier applier) =>
        Track(ReplicationLink.ListenAsync(at, peer, _key, Connected.StandbyNode, Connected.ActiveNode,
            (channel, token) => new ReplicationReceiver(applier).RunAsync(channel, token), _ended.Enqueue, _stop.Token));

    private Task Connect(IPEndPoint to, ReplicationSender sender) =>
        Track(ReplicationLink.ConnectAsync(to, new IPEndPoint(ActiveAddress, 0), _key, Connected.ActiveNode, Connected.StandbyNode,
            sender.RunAsync, _ended.Enqueue, TimeSpan.FromMilliseconds(50), TimeProvider.System, _stop.Token));

    private Task Track(Task task)
    {
        _running.Add(task);
        return task;
    }

    [Fact]
    public async Task The_active_node_connects_once_the_standby_listens_and_after_a_cut_resumes_where_the_replica_stands()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Write(journal, "a", "first");
        using var sender = new ReplicationSender(journal);
        var standby = new IPEndPoint(StandbyAddress, LoopbackPorts.Free());
        var relay = new Relay(standby);
        // The active node starts first: nobody listens yet; the relay (the link) closes each connection it cannot
        // carry on, and the active node retries. Waited for, not slept on: a busy machine may take its time.
        _ = Connect(relay.At, sender);
        Assert.True(await Polling.UntilAsync(() => _ended.Any(e => e.Contains("closed the connection before its hello", StringComparison.Ordinal)), Patience, TestContext.Current.CancellationToken),
            "no connection was tried and closed before the standby listened: " + string.Join(" | ", _ended));
        var applier = new CutApplier(Replica, _directory.File("state"));
        _ = Listen(standby, ActiveAddress, applier);
        await sender.WaitAppliedAsync(journal.LastSequence, TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken);
        Assert.Equal("first", File.ReadAllText(Path.Combine(Replica, "a")));

        // The link is cut (every connection through the relay dropped); meanwhile the active node goes on writing.
        relay.Cut();
        Write(journal, "b", "second");
        sender.Appended();
        await sender.WaitAppliedAsync(journal.LastSequence, TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken);
        Assert.Equal("second", File.ReadAllText(Path.Combine(Replica, "b")));
        Assert.True(relay.Connections >= 2, $"{relay.Connections} connections");
        // The position is recorded right after the acknowledgement (which waits only for the cut to be durable and
        // visible), before the receiver reads on.
        Assert.True(await Polling.UntilAsync(() => Task.FromResult(applier.LastApplied == (Generation, journal.LastSequence)), Patience, CancellationToken.None),
            $"the replica's position stayed at {applier.LastApplied}");
        relay.Dispose();
    }

    [Fact]
    public async Task A_session_that_fails_on_this_node_is_reported_with_its_type_and_the_next_connection_is_served()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Write(journal, "a", "first");
        using var sender = new ReplicationSender(journal);
        var standby = new IPEndPoint(StandbyAddress, LoopbackPorts.Free());
        var applier = new CutApplier(Replica, _directory.File("state"));
        var sessions = 0;
        _ = Track(ReplicationLink.ListenAsync(standby, ActiveAddress, _key, Connected.StandbyNode, Connected.ActiveNode,
            (channel, token) => Interlocked.Increment(ref sessions) == 1
                ? throw new NotSupportedException("a defect in the first session")
                : new ReplicationReceiver(applier).RunAsync(channel, token),
            _ended.Enqueue, _stop.Token));
        _ = Connect(standby, sender);

        await sender.WaitAppliedAsync(journal.LastSequence, TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken);
        Assert.Equal("first", File.ReadAllText(Path.Combine(Replica, "a")));
        Assert.Contains(_ended, e => e.Contains("failed on this node (NotSupportedException): a defect in the first session", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_connection_that_went_silent_is_replaced_by_the_peers_next_one()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Write(journal, "a", "first");
        using var sender = new ReplicationSender(journal);
        var standby = new IPEndPoint(StandbyAddress, LoopbackPorts.Free());
        _ = Listen(standby, ActiveAddress, new CutApplier(Replica, _directory.File("state")));
        await Task.Delay(100, TestContext.Current.CancellationToken);
        // An old connection from the peer, past its hello, that never says anything more (its cable was pulled).
        using var silent = new TcpClient(new IPEndPoint(ActiveAddress, 0));
        await silent.ConnectAsync(standby, TestContext.Current.CancellationToken);
        using var stale = await ReplicationChannel.OpenAsync(silent.GetStream(), _key, ReplicationSide.Sender, Connected.ActiveNode, Connected.StandbyNode, TestContext.Current.CancellationToken);

        _ = Connect(standby, sender);

        await sender.WaitAppliedAsync(journal.LastSequence, TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken);
        Assert.Equal("first", File.ReadAllText(Path.Combine(Replica, "a")));
        Assert.Contains(_ended, e => e.Contains("replaced by a newer one from the peer", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_standby_serves_its_peer_only()
    {
        var standby = new IPEndPoint(StandbyAddress, LoopbackPorts.Free());
        // The standby's peer is 127.0.0.3; this test connects from 127.0.0.1.
        _ = Listen(standby, IPAddress.Parse("127.0.0.3"), new CutApplier(Replica, _directory.File("state")));
        await Task.Delay(100, TestContext.Current.CancellationToken);
        using var stranger = new TcpClient(new IPEndPoint(ActiveAddress, 0));
        await stranger.ConnectAsync(standby, TestContext.Current.CancellationToken);
        Assert.True(await Polling.UntilAsync(() => _ended.Any(e => e.Contains("refused a replication connection from 127.0.0.1", StringComparison.Ordinal)), Patience, TestContext.Current.CancellationToken),
            string.Join("\n", _ended));
        // Closed without a hello: the stranger reads the end of the stream.
        var read = await stranger.GetStream().ReadAsync(new byte[64], TestContext.Current.CancellationToken);
        Assert.Equal(0, read);
    }

    private static void Write(JournalFile journal, string path, string content)
    {
        var next = journal.LastSequence;
        journal.Append(new CreateRecord(++next, Generation, path, 0b110_100_100));
        journal.Append(new WriteRecord(++next, Generation, path, (ulong)content.Length, 4096, [new BlockChange(0, System.Text.Encoding.UTF8.GetBytes(content))]));
        journal.Append(new CutRecord(++next, Generation));
        journal.Sync();
    }

    /// <summary>A TCP relay in front of the standby, as the dedicated link: <see cref="Cut"/> drops every connection
    /// through it (both ends see the connection end), and it accepts the next ones.</summary>
    private sealed class Relay : IDisposable
    {
        private readonly TcpListener _listener = new(ActiveAddress, 0);
        private readonly ConcurrentBag<TcpClient> _open = [];
        private readonly CancellationTokenSource _stop = new();
        private int _connections;

        public Relay(IPEndPoint target)
        {
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    TcpClient inbound;
                    try
                    {
                        inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                        return;
                    }

                    var outbound = new TcpClient(new IPEndPoint(ActiveAddress, 0));
                    try
                    {
                        await outbound.ConnectAsync(target, _stop.Token);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SocketException)
                    {
                        inbound.Dispose();
                        outbound.Dispose();
                        continue;
                    }

                    Interlocked.Increment(ref _connections);
                    _open.Add(inbound);
                    _open.Add(outbound);
                    _ = Pump(inbound, outbound);
                    _ = Pump(outbound, inbound);
                }
            });
        }

        public IPEndPoint At => (IPEndPoint)_listener.LocalEndpoint;

        public int Connections => Volatile.Read(ref _connections);

        private async Task Pump(TcpClient from, TcpClient to)
        {
            try
            {
                await from.GetStream().CopyToAsync(to.GetStream(), _stop.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
            }

            from.Dispose();
            to.Dispose();
        }

        public void Cut()
        {
            while (_open.TryTake(out var client))
            {
                try
                {
                    // A reset, as a pulled cable ends up being for the ends that still send.
                    client.Client?.LingerState = new LingerOption(true, 0);
                }
                catch (ObjectDisposedException)
                {
                }

                client.Dispose();
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            Cut();
            _stop.Dispose();
        }
    }
}
