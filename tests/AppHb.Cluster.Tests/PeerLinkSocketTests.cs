using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using AppHb.Cluster.Links;
using AppHb.Cluster.Wire;
using AppHb.Core.Cluster;
using AppHb.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>Two nodes' link sockets in two network namespaces joined by a veth pair (the dedicated cable): datagrams
/// cross it, and whatever a third party sends (forged, replayed, foreign, truncated, from a stranger's address) is
/// refused, counted by reason and never delivered.</summary>
public sealed class PeerLinkSocketTests : IAsyncLifetime
{
    private const uint Cluster = 0x41484250;
    private const int Port = 7405;
    private static readonly byte[] Key = Encoding.ASCII.GetBytes("0123456789abcdef0123456789abcdef");
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly ClusterLink AtA = new("dedicated", LinkKind.Dedicated, "ded0", IPAddress.Parse("10.213.9.1"), IPAddress.Parse("10.213.9.2"), Port);
    private static readonly ClusterLink AtB = new("dedicated", LinkKind.Dedicated, "ded0", IPAddress.Parse("10.213.9.2"), IPAddress.Parse("10.213.9.1"), Port);
    private NetworkNamespace _a = null!;
    private NetworkNamespace _b = null!;

    public async ValueTask InitializeAsync()
    {
        _a = await NetworkNamespace.CreateAsync("apphb-la");
        _b = await NetworkNamespace.CreateAsync("apphb-lb");
        await NetworkNamespace.ConnectAsync(_a, "ded0", "10.213.9.1/24", _b, "ded0", "10.213.9.2/24");
        // A second address on A's end: a stranger on the cable.
        await _a.IpAsync("address", "add", "10.213.9.66/24", "dev", "ded0");
    }

    public ValueTask DisposeAsync()
    {
        _a.Dispose();
        _b.Dispose();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task The_peer_is_heard_and_every_forgery_refused_for_its_reason()
    {
        using var sender = await _a.Run(() => PeerLinkSocket.Open(AtA, Key));
        using var receiving = await _b.Run(() => PeerLinkSocket.Open(AtB, Key));
        var receiver = new PeerReceiver(Key, Cluster, peer: 1, me: 2);
        var heard = new ConcurrentQueue<(PeerDatagram Datagram, string Link)>();
        var refused = new ConcurrentQueue<(PeerRejection Reason, IPAddress From)>();
        using var stop = new CancellationTokenSource();
        var receiving_ = receiving.ReceiveAsync(receiver, (d, l) => heard.Enqueue((d, l.Name)), (r, from, _) => refused.Enqueue((r, from.Address)), stop.Token);

        Assert.Equal(SocketError.Success, sender.Send(Heartbeat(epoch: 5, sequence: 1)));
        await WaitUntilAsync(() => !heard.IsEmpty);
        var (datagram, link) = Assert.Single(heard);
        Assert.Equal("dedicated", link);
        Assert.Equal(Heartbeat(epoch: 5, sequence: 1).Header, datagram.Header);

        // Sent from A's namespace as raw UDP: from the peer's own address, then from a stranger's.
        var genuine = PeerCodec.Encode(Heartbeat(epoch: 5, sequence: 2), Key);
        var forged = PeerCodec.Encode(Heartbeat(epoch: 5, sequence: 3), Encoding.ASCII.GetBytes("another key, another pair.......").AsSpan(0, 32));
        var foreign = PeerCodec.Encode(Heartbeat(epoch: 5, sequence: 4) with { Header = new PeerHeader(Cluster + 1, 1, 2, 5, 4) }, Key);
        await _a.Run(() =>
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(AtA.Local, 0));
            var to = new IPEndPoint(AtB.Local, Port);
            udp.SendTo(genuine, to);
            udp.SendTo(genuine, to);                 // the same again: a replay
            udp.SendTo(forged, to);
            udp.SendTo(foreign, to);
            udp.SendTo(genuine.AsSpan(0, 20), SocketFlags.None, to);
            using var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            stranger.Bind(new IPEndPoint(IPAddress.Parse("10.213.9.66"), 0));
            stranger.SendTo(PeerCodec.Encode(Heartbeat(epoch: 5, sequence: 9), Key), to);
            return true;
        });

        await WaitUntilAsync(() => refused.Count >= 5 && heard.Count >= 2);
        await Task.Delay(200, TestContext.Current.CancellationToken);
        Assert.Equal(2, heard.Count);
        Assert.Equal(
            [(PeerRejection.Replayed, AtA.Local), (PeerRejection.Forged, AtA.Local), (PeerRejection.ForeignCluster, AtA.Local),
                (PeerRejection.Truncated, AtA.Local), (PeerRejection.WrongNode, IPAddress.Parse("10.213.9.66"))],
            refused.ToArray());
        foreach (var reason in new[] { PeerRejection.Replayed, PeerRejection.Forged, PeerRejection.ForeignCluster, PeerRejection.Truncated, PeerRejection.WrongNode })
        {
            Assert.Equal(1, receiver.Rejected(reason));
        }

        // The stranger's datagram was genuine in every byte: its source alone refused it, and its sequence was not
        // taken, so the peer's own datagram with that sequence is still accepted.
        Assert.Equal(SocketError.Success, sender.Send(Heartbeat(epoch: 5, sequence: 9)));
        Assert.True(await WaitUntilAsync(() => heard.Count >= 3), "the peer's own datagram with sequence 9 was not accepted");
        Assert.Equal(5UL, receiver.PeerEpoch);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receiving_);
    }

    [Fact]
    public async Task Heartbeats_to_a_host_whose_port_is_closed_are_reported_and_the_link_still_hears_its_peer_after()
    {
        using var sending = await _a.Run(() => PeerLinkSocket.Open(AtA, Key));
        var receiver = new PeerReceiver(Key, Cluster, peer: 2, me: 1);
        var closed = 0;
        var heard = new ConcurrentQueue<PeerDatagram>();
        using var stop = new CancellationTokenSource();
        var receiving = sending.ReceiveAsync(receiver, (d, _) => heard.Enqueue(d), null, stop.Token, _ => Interlocked.Increment(ref closed));

        // Nothing listens on B's port: B's kernel answers port unreachable, as a host whose apphbd was killed does.
        // Unlimited here, so that hours of a dead peer's errors come in a moment: each also sits on the socket's error
        // queue, charged to its receive buffer, until drained.
        await _b.SysctlAsync("net.ipv4.icmp_ratelimit", "0");
        await _b.SysctlAsync("net.ipv4.icmp_msgs_per_sec", "1000000");
        for (var sequence = 1UL; sequence <= 5000; sequence++)
        {
            sending.Send(Heartbeat(epoch: 5, sequence: sequence));
            if (sequence % 50 == 0)
            {
                await Task.Delay(5, TestContext.Current.CancellationToken);
            }
        }

        Assert.True(await WaitUntilAsync(() => Volatile.Read(ref closed) > 0), "no port unreachable was reported");

        // B's apphbd back: its heartbeats still arrive (the queued errors did not fill the receive buffer).
        using var peer = await _b.Run(() => PeerLinkSocket.Open(AtB, Key));
        for (var sequence = 1UL; sequence <= 3; sequence++)
        {
            Assert.Equal(SocketError.Success, peer.Send(HeartbeatFrom(2, 1, epoch: 7, sequence)));
        }

        Assert.True(await WaitUntilAsync(() => heard.Count == 3), $"heard {heard.Count} of B's 3 heartbeats after the errors");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receiving);
    }

    [Fact]
    public async Task A_link_that_cannot_listen_says_where()
    {
        var wrong = AtA with { Local = IPAddress.Parse("10.213.9.200") };
        var e = await Assert.ThrowsAsync<IOException>(() => _a.Run(() => PeerLinkSocket.Open(wrong, Key)));
        Assert.Contains("cluster link dedicated: cannot listen on 10.213.9.200:7405 via ded0", e.Message, StringComparison.Ordinal);
    }

    private static PeerHeartbeat Heartbeat(ulong epoch, ulong sequence) => HeartbeatFrom(1, 2, epoch, sequence);

    private static PeerHeartbeat HeartbeatFrom(ushort from, ushort to, ulong epoch, ulong sequence) => new(new PeerHeader(Cluster, from, to, epoch, sequence), ClusterRole.Active, 0,
        ReachesPingTargets: true, GroupRunning: true, [new HeardLink(0, LinkState.Up, 20)], [new DataGeneration(3, 1)], ReplicationPosition: 0);

    private static Task<bool> WaitUntilAsync(Func<bool> condition) => Polling.UntilAsync(condition, Bound, TestContext.Current.CancellationToken);
}
