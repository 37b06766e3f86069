using System.Net.Sockets;

namespace AppHb.Linux.Network;

/// <summary>ICMP errors for what an unconnected UDP socket sends (a port unreachable says nothing listens on the
/// destination's port while its host runs). Linux reports them on such a socket only with IP_RECVERR, and then also
/// queues each one on the socket's error queue, charged to its receive buffer: a queue never read would fill it and
/// the socket would drop real datagrams, so whoever enables them drains the queue whenever an error surfaces.</summary>
public static class IcmpErrors
{
    private const int SolIp = 0;
    private const int IpRecvErr = 11;
    private const int SolIpv6 = 41;
    private const int Ipv6RecvErr = 25;

    /// <summary>Makes <paramref name="socket"/>'s receives fail with the error (ConnectionRefused for a port
    /// unreachable) once an ICMP error arrives for one of its datagrams.</summary>
    public static void Report(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var on = BitConverter.GetBytes(1);
        if (socket.AddressFamily == AddressFamily.InterNetworkV6)
        {
            socket.SetRawSocketOption(SolIpv6, Ipv6RecvErr, on);
        }
        else
        {
            socket.SetRawSocketOption(SolIp, IpRecvErr, on);
        }
    }

    /// <summary>Empties the socket's error queue without blocking; how many errors it held.</summary>
    public static unsafe int Drain(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            var fd = (int)handle.DangerousGetHandle();
            var buffer = stackalloc byte[256];
            var drained = 0;
            // Bounded: the queue is bounded by the receive buffer.
            while (drained < 10_000 && Interop.Recv(fd, buffer, 256, Interop.MSG_ERRQUEUE | Interop.MSG_DONTWAIT) >= 0)
            {
                drained++;
            }

            return drained;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
