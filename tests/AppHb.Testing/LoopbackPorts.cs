using System.Net;
using System.Net.Sockets;

namespace AppHb.Testing;

/// <summary>Ports on 127.0.0.1 for servers a test starts (an HTTP server, Prometheus).</summary>
public static class LoopbackPorts
{
    /// <summary>A port the kernel just handed out and that is free again (a tiny window for a race, fine for tests).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A UDP port, the same way (snmpd's agent address, snmptrapd's).</summary>
    public static int FreeUdp()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
