using System.Net;
using System.Net.Sockets;
using System.Text;
using AppHb.Cluster.Wire;
using AppHb.Linux.Network;

namespace AppHb.Cluster.Links;

/// <summary>The UDP socket of one link: bound to the link's local address and port and to its interface
/// (SO_BINDTODEVICE), so that what the dedicated link carries never leaves by the LAN and the reverse: a link's
/// verdict is about that cable. Sends this node's datagrams to the peer's address; hands each accepted datagram to
/// the host, refusing (and counting) the rest through the shared <see cref="PeerReceiver"/>.</summary>
public sealed class PeerLinkSocket : IDisposable
{
    private const int SolSocket = 1;
    private const int SoBindToDevice = 25;
    private readonly Socket _socket;
    private readonly IPEndPoint _peer;
    private readonly byte[] _key;
    private Action<ClusterLink>? _portClosed;

    private PeerLinkSocket(ClusterLink link, Socket socket, byte[] key)
    {
        Link = link;
        _socket = socket;
        _peer = new IPEndPoint(link.Peer, link.Port);
        _key = key;
    }

    public ClusterLink Link { get; }

    /// <summary>Opens the link's socket in the calling thread's network namespace.</summary>
    /// <exception cref="IOException">The interface or the address is not there, or the port is taken.</exception>
    public static PeerLinkSocket Open(ClusterLink link, ReadOnlySpan<byte> key)
    {
        ArgumentNullException.ThrowIfNull(link);
        var socket = new Socket(link.Local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.SetRawSocketOption(SolSocket, SoBindToDevice, Encoding.ASCII.GetBytes(link.Interface + "\0"));
            socket.Bind(new IPEndPoint(link.Local, link.Port));
            // The peer's host answering a heartbeat with port unreachable is how a killed apphbd on a running host
            // is told from a silent one, within a keepalive instead of deadtime.
            IcmpErrors.Report(socket);
            return new PeerLinkSocket(link, socket, key.ToArray());
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cluster link {link.Name}: cannot listen on {link.Local}:{link.Port} via {link.Interface}: {e.Message}", e);
        }
    }

    /// <summary>Sends one datagram to the peer on this link. A link that is down is not an error here: the peer's
    /// silence is how the pair learns of it; the reason is returned for the log.</summary>
    public SocketError Send(PeerDatagram datagram)
    {
        var bytes = PeerCodec.Encode(datagram, _key);
        try
        {
            _socket.SendTo(bytes, _peer);
            return SocketError.Success;
        }
        catch (SocketException e)
        {
            if (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // The pending ICMP error surfaced here rather than in the receive loop.
                PortClosed();
            }

            return e.SocketErrorCode;
        }
    }

    private void PortClosed()
    {
        IcmpErrors.Drain(_socket);
        _portClosed?.Invoke(Link);
    }

    /// <summary>Receives on the calling thread until cancelled (a thread of the pair's own: the peer's heartbeats must
    /// not wait for a pool thread, or this node takes the peer for silent while it is the one starved), blocking at
    /// most <paramref name="poll"/> at a time to see the cancellation: every datagram that
    /// <paramref name="receiver"/> accepts goes to <paramref name="accepted"/>, every other to <paramref name="refused"/>
    /// with its reason and source; a port unreachable for one of this link's heartbeats (this socket sends to the peer
    /// only) to <paramref name="portClosed"/>.</summary>
    public void Receive(PeerReceiver receiver, Action<PeerDatagram, ClusterLink> accepted,
        Action<PeerRejection, IPEndPoint, ClusterLink>? refused, Action<ClusterLink>? portClosed, TimeSpan poll, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        ArgumentNullException.ThrowIfNull(accepted);
        _portClosed = portClosed;
        _socket.ReceiveTimeout = (int)Math.Clamp(poll.TotalMilliseconds, 1, int.MaxValue);
        var buffer = new byte[PeerCodec.MaxDatagramSize + 1];
        while (!cancellationToken.IsCancellationRequested)
        {
            int length;
            var from = AnySource;
            try
            {
                length = _socket.ReceiveFrom(buffer, SocketFlags.None, ref from);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.Interrupted)
            {
                continue;
            }
            catch (SocketException e) when (IcmpError(e))
            {
                continue;
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException && cancellationToken.IsCancellationRequested)
            {
                return;
            }

            Deliver(receiver, buffer.AsSpan(0, length), (IPEndPoint)from, accepted, refused);
        }
    }

    /// <summary>Receives until cancelled, as <see cref="Receive"/> does, on the thread pool.</summary>
    public async Task ReceiveAsync(PeerReceiver receiver, Action<PeerDatagram, ClusterLink> accepted,
        Action<PeerRejection, IPEndPoint, ClusterLink>? refused, CancellationToken cancellationToken, Action<ClusterLink>? portClosed = null)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        ArgumentNullException.ThrowIfNull(accepted);
        _portClosed = portClosed;
        var buffer = new byte[PeerCodec.MaxDatagramSize + 1];
        while (!cancellationToken.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, AnySource, cancellationToken);
            }
            catch (SocketException e) when (IcmpError(e))
            {
                continue;
            }

            Deliver(receiver, buffer.AsSpan(0, received.ReceivedBytes), (IPEndPoint)received.RemoteEndPoint, accepted, refused);
        }
    }

    private EndPoint AnySource => new IPEndPoint(Link.Local.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);

    /// <summary>An ICMP error for an earlier send, surfaced by a receive. A host gone or unreachable: its silence says
    /// so. Its port closed: its apphbd is gone while the host runs. False for any other error.</summary>
    private bool IcmpError(SocketException e)
    {
        switch (e.SocketErrorCode)
        {
            case SocketError.ConnectionRefused:
                PortClosed();
                return true;
            case SocketError.HostUnreachable or SocketError.NetworkUnreachable:
                IcmpErrors.Drain(_socket);
                return true;
            default:
                return false;
        }
    }

    private void Deliver(PeerReceiver receiver, ReadOnlySpan<byte> bytes, IPEndPoint source, Action<PeerDatagram, ClusterLink> accepted,
        Action<PeerRejection, IPEndPoint, ClusterLink>? refused)
    {
        var verdict = receiver.Accept(bytes, source.Address, Link, out var datagram);
        if (verdict == PeerRejection.None)
        {
            accepted(datagram!, Link);
        }
        else
        {
            refused?.Invoke(verdict, source, Link);
        }
    }

    public void Dispose() => _socket.Dispose();
}
