using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>bits/socket.h, linux/netlink.h, linux/if_ether.h: the families, types and protocols the network code
    /// opens.</summary>
    internal const int AF_INET = 2;
    internal const int AF_INET6 = 10;
    internal const int AF_NETLINK = 16;
    internal const int AF_PACKET = 17;
    internal const int SOCK_DGRAM = 2;
    internal const int SOCK_RAW = 3;
    internal const int NETLINK_ROUTE = 0;
    internal const ushort ETH_P_ARP = 0x0806;

    /// <summary>linux/sockios.h: an interface's index and hardware address by name, asked of any socket (in the
    /// calling thread's network namespace).</summary>
    internal const uint SIOCGIFHWADDR = 0x8927;
    internal const uint SIOCGIFINDEX = 0x8933;
    internal const uint SIOCGIFFLAGS = 0x8913;
    internal const uint SIOCSIFFLAGS = 0x8914;
    internal const short IFF_UP = 0x1;
    /// <summary>sizeof(struct ifreq): IFNAMSIZ (16) + the largest member of its union (struct ifmap, 24).</summary>
    internal const int IfReqSize = 40;
    internal const int IfNameSize = 16;
    /// <summary>sizeof(struct sockaddr_ll) and sizeof(struct sockaddr_nl).</summary>
    internal const int SockAddrLinkLayerSize = 20;
    internal const int SockAddrNetlinkSize = 12;

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "bind", SetLastError = true)]
    internal static unsafe partial int Bind(int fd, void* address, uint length);

    [LibraryImport(Libc, EntryPoint = "sendto", SetLastError = true)]
    internal static unsafe partial nint SendTo(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength);
}
