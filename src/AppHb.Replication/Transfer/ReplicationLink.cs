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
    public static Task ListenAsync(IPEndPoint local, IPAddress peer, ReadOnlyMemory<byte> clusterKey, ushort nodeId, ushort peerNodeId,
        Session session, Action<string> ended, CancellationToken cancellationToken) =>
        ListenAsync([(local, peer)], clusterKey, nodeId, peerNodeId, session, ended, cancellationToken);

    /// <summary>The standby's side over several links (the dedicated one, and the LAN when replication may use it):
    /// listens on each route's local address for its peer address, and serves one connection at a time, whichever
    /// link it came over, the newest.</summary>
    public static async Task ListenAsync(IReadOnlyList<(IPEndPoint Local, IPAddress Peer)> routes, ReadOnlyMemory<byte> clusterKey, ushort nodeId,
        ushort peerNodeId, Session session, Action<string> ended, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(routes);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(ended);
        var listeners = new List<Socket>();
        try
        {
            foreach (var (local, _) in routes)
            {
                var listener = new Socket(local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                listeners.Add(listener);
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                listener.Bind(local);
                listener.Listen(4);
            }

            // One session at a time, the newest: a connection whose cable was pulled may never say it ended, and the
            // peer's new one (over the same link or another) must not wait behind it.
            using var turn = new SemaphoreSlim(1, 1);
            CancellationTokenSource? current = null;
            var running = Task.CompletedTask;
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

            async Task AcceptAsync(Socket listener, IPAddress peer)
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

                    await turn.WaitAsync(CancellationToken.None);
                    try
                    {
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
                    finally
                    {
                        turn.Release();
                    }
                }
            }

            try
            {
                await Task.WhenAll(listeners.Select((l, i) => AcceptAsync(l, routes[i].Peer)));
            }
            finally
            {
                await turn.WaitAsync(CancellationToken.None);
                await StopCurrentAsync();
                turn.Release();
            }
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Dispose();
            }
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
    public static Task ConnectAsync(IPEndPoint peer, IPEndPoint? local, ReadOnlyMemory<byte> clusterKey, ushort nodeId, ushort peerNodeId,
        Session session, Action<string> ended, TimeSpan retry, TimeProvider time, CancellationToken cancellationToken) =>
        ConnectAsync([(peer, local)], clusterKey, nodeId, peerNodeId, session, ended, retry, time, cancellationToken);

    /// <summary>How long one attempt over a route waits for the peer to answer when another route could be tried:
    /// a link whose packets vanish would otherwise hold the attempt for TCP's minutes of SYN retries.</summary>
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The active node's side over several routes, in order of preference (the dedicated link first, then
    /// the LAN when replication may use it): each round tries them in order until one connects, runs the session,
    /// and starts again from the first when it ends (so replication returns to the dedicated link once it works).</summary>
    public static async Task ConnectAsync(IReadOnlyList<(IPEndPoint Peer, IPEndPoint? Local)> routes, ReadOnlyMemory<byte> clusterKey, ushort nodeId,
        ushort peerNodeId, Session session, Action<string> ended, TimeSpan retry, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(routes);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(ended);
        ArgumentNullException.ThrowIfNull(time);
        var delay = retry;
        while (!cancellationToken.IsCancellationRequested)
        {
            foreach (var (peer, local) in routes)
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

                        using (var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                        {
                            if (routes.Count > 1)
                            {
                                attempt.CancelAfter(ConnectTimeout);
                            }

                            try
                            {
                                await socket.ConnectAsync(peer, attempt.Token);
                            }
                            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                            {
                                ended($"cannot connect to {peer}: no answer within {ConnectTimeout.TotalSeconds:0} s");
                                continue;
                            }
                        }

                        delay = retry;
                        reason = await RunOneAsync(socket, clusterKey, ReplicationSide.Sender, nodeId, peerNodeId, session, cancellationToken);
                    }
                    catch (SocketException e)
                    {
                        ended($"cannot connect to {peer}: {e.Message}");
                        continue;
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }

                    ended(reason);
                    // A session ran: the next round starts again with the preferred route.
                    break;
                }
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
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A defect of this code, not of the peer: said with its type, and the next connection served. Let through,
            // it ended the listener for good (its turn awaited the faulted session), and replication with it, silently.
            return $"the replication connection with {peer} failed on this node ({e.GetType().Name}): {e.Message}";
        }
    }
}
