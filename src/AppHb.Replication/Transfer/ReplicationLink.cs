using System.Net;
using System.Net.Sockets;

namespace AppHb.Replication.Transfer;

/// <summary>The replication connection's transport on the dedicated link: the standby listens, the active node
/// connects, and either side goes on after a connection ends (a cable pulled, a peer restarted, a frame refused):
/// the sender reconnects with a growing delay, the listener accepts the next connection (the newest replaces one that
/// may be dead without knowing it; keepalives and a send timeout end such a connection in seconds anyway). Each connection resumes
/// where the replica stands (the receiver's first message), so nothing is sent twice into the replica and nothing
/// is skipped.</summary>
public static class ReplicationLink
{
    /// <summary>How the session on one connection is run (a <see cref="ReplicationSender"/>'s or a
    /// <see cref="ReplicationReceiver"/>'s RunAsync).</summary>
    public delegate Task Session(ReplicationChannel channel, CancellationToken cancellationToken);

    /// <summary>The standby's side: listens on <paramref name="local"/> and serves one connection at a time, only
    /// from <paramref name="peer"/>; every connection that ends is reported through <paramref name="ended"/> with its
    /// reason. Runs until cancelled.</summary>
    public static async Task ListenAsync(IPEndPoint local, IPAddress peer, ReadOnlyMemory<byte> clusterKey, ushort nodeId, ushort peerNodeId,
        Session session, Action<string> ended, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(ended);
        using var listener = new Socket(local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(local);
        listener.Listen(4);
        // One session at a time, the newest: a connection whose cable was pulled may never say it ended, and the
        // peer's new one must not wait behind it.
        CancellationTokenSource? current = null;
        Task running = Task.CompletedTask;
        async Task StopCurrentAsync()
        {
            if (current is not null)
            {
                await current.CancelAsync();
                await running;
                current.Dispose();
                current = null;
            }
        }

        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Socket accepted;
                try
                {
                    accepted = await listener.AcceptAsync(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                var from = (IPEndPoint)accepted.RemoteEndPoint!;
                if (!from.Address.Equals(peer) && !(from.Address.IsIPv4MappedToIPv6 && from.Address.MapToIPv4().Equals(peer)))
                {
                    accepted.Dispose();
                    ended($"refused a replication connection from {from}: the peer replicates from {peer} only");
                    continue;
                }

                await StopCurrentAsync();
                current = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var token = current.Token;
                running = Task.Run(async () =>
                {
                    using (accepted)
                    {
                        try
                        {
                            ended(await RunOneAsync(accepted, clusterKey, ReplicationSide.Receiver, nodeId, peerNodeId, session, token));
                        }
                        catch (OperationCanceledException)
                        {
                            ended(cancellationToken.IsCancellationRequested
                                ? $"the replication connection with {from} closed: replication is stopping"
                                : $"the replication connection with {from} was replaced by a newer one from the peer");
                        }
                    }
                }, CancellationToken.None);
            }
        }
        finally
        {
            await StopCurrentAsync();
        }
    }

    /// <summary>Lets a connection whose peer vanished (a cable pulled, a node powered off: no FIN, no RST) end in
    /// seconds instead of TCP's default of many minutes: keepalive probes when idle, and a limit on unacknowledged
    /// data.</summary>
    private static void DetectDeadPeer(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 2);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 1);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
        // TCP_USER_TIMEOUT (linux/tcp.h: 18), in milliseconds.
        socket.SetRawSocketOption(6, 18, BitConverter.GetBytes(5_000));
    }

    /// <summary>The active node's side: connects to <paramref name="peer"/> (from <paramref name="local"/> when given,
    /// the dedicated link's own address), runs the session, and after it ends reconnects, waiting
    /// <paramref name="retry"/> at first and twice as long after each failure in a row, up to ten times
    /// <paramref name="retry"/>. Runs until cancelled.</summary>
    public static async Task ConnectAsync(IPEndPoint peer, IPEndPoint? local, ReadOnlyMemory<byte> clusterKey, ushort nodeId, ushort peerNodeId,
        Session session, Action<string> ended, TimeSpan retry, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(ended);
        ArgumentNullException.ThrowIfNull(time);
        var delay = retry;
        while (!cancellationToken.IsCancellationRequested)
        {
            var socket = new Socket(peer.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using (socket)
            {
                string reason;
                try
                {
                    if (local is not null)
                    {
                        socket.Bind(local);
                    }

                    await socket.ConnectAsync(peer, cancellationToken);
                    delay = retry;
                    reason = await RunOneAsync(socket, clusterKey, ReplicationSide.Sender, nodeId, peerNodeId, session, cancellationToken);
                }
                catch (SocketException e)
                {
                    reason = $"cannot connect to {peer}: {e.Message}";
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                ended(reason);
            }

            try
            {
                await Task.Delay(delay, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, retry.Ticks * 10));
        }
    }

    /// <summary>One connection: the hello, then the session until it ends; why it ended.</summary>
    private static async Task<string> RunOneAsync(Socket socket, ReadOnlyMemory<byte> clusterKey, ReplicationSide side, ushort nodeId, ushort peerNodeId,
        Session session, CancellationToken cancellationToken)
    {
        var peer = socket.RemoteEndPoint;
        socket.NoDelay = true;
        DetectDeadPeer(socket);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            using var channel = await ReplicationChannel.OpenAsync(stream, clusterKey, side, nodeId, peerNodeId, cancellationToken);
            await session(channel, cancellationToken);
            return $"the replication connection with {peer} ended";
        }
        catch (ReplicationRefusedException e)
        {
            return $"the replication connection with {peer} ended: {e.Message}";
        }
        catch (IOException e)
        {
            return $"the replication connection with {peer} failed: {e.Message}";
        }
        catch (SocketException e)
        {
            return $"the replication connection with {peer} failed: {e.Message}";
        }
        catch (Exception e) when (e is InvalidDataException or InvalidOperationException or ArgumentException or UnauthorizedAccessException)
        {
            // This node's own trouble (a replica's state file unreadable, a directory refused): said, and the
            // connection tried again, never a silent end of replication.
            return $"the replication connection with {peer} failed on this node: {e.Message}";
        }
    }
}
