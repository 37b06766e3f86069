using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Network;

/// <summary>Tells the link that an address has moved to this interface: a gratuitous ARP request for IPv4 (sender and
/// target both the address, broadcast), an unsolicited neighbour advertisement for IPv6 (override flag set, to all
/// nodes). Neighbours and switches update their caches at once instead of after their entries age out.</summary>
public sealed class NeighbourAnnouncer : IDisposable
{
    private const int ArpPacketSize = 28;
    private const int AdvertisementSize = 32;
    private readonly LinkInterface _link;
    private readonly Interop.FileDescriptorHandle _packet;
    private readonly Socket? _icmp;
    private readonly SocketException? _icmpUnavailable;

    private NeighbourAnnouncer(LinkInterface link, Interop.FileDescriptorHandle packet)
    {
        _link = link;
        _packet = packet;
        // Opened now, in the namespace of the caller of Open, like the packet socket; a host without IPv6 can still
        // announce IPv4 addresses.
        try
        {
            var icmp = new Socket(AddressFamily.InterNetworkV6, SocketType.Raw, ProtocolType.IcmpV6);
            // Receivers drop neighbour discovery that did not come with hop limit 255 (RFC 4861 7.1.2).
            icmp.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastTimeToLive, 255);
            icmp.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastInterface, link.Index);
            _icmp = icmp;
        }
        catch (SocketException e)
        {
            _icmpUnavailable = e;
        }
    }

    /// <summary>Opens the sockets in the calling thread's network namespace.</summary>
    public static NeighbourAnnouncer Open(LinkInterface link)
    {
        ArgumentNullException.ThrowIfNull(link);
        var fd = Interop.Socket(Interop.AF_PACKET, Interop.SOCK_DGRAM | Interop.SOCK_CLOEXEC, BinaryPrimitives.ReverseEndianness((short)Interop.ETH_P_ARP));
        if (fd < 0)
        {
            throw new IOException($"cannot open a packet socket on {link.Name} for gratuitous ARP: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        return new NeighbourAnnouncer(link, new Interop.FileDescriptorHandle(fd));
    }

    /// <summary>Sends one announcement of <paramref name="address"/> (which this interface now holds).</summary>
    public void Announce(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            AnnounceArp(address);
        }
        else
        {
            AnnounceAdvertisement(address);
        }
    }

    public void Dispose()
    {
        _packet.Dispose();
        _icmp?.Dispose();
    }

    private unsafe void AnnounceArp(IPAddress address)
    {
        Span<byte> packet = stackalloc byte[ArpPacketSize];
        BinaryPrimitives.WriteUInt16BigEndian(packet, 1);            // hardware: Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(packet[2..], 0x0800);  // protocol: IPv4
        packet[4] = 6;
        packet[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(packet[6..], 1);       // a request: what every stack accepts as gratuitous
        var hardware = _link.HardwareAddress.GetAddressBytes();
        var ip = address.GetAddressBytes();
        hardware.CopyTo(packet[8..]);
        ip.CopyTo(packet[14..]);
        packet[18..24].Clear();                                      // target hardware: unknown
        ip.CopyTo(packet[24..]);

        // struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8].
        var destination = stackalloc byte[Interop.SockAddrLinkLayerSize];
        var to = new Span<byte>(destination, Interop.SockAddrLinkLayerSize);
        to.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(to, Interop.AF_PACKET);
        BinaryPrimitives.WriteUInt16BigEndian(to[2..], Interop.ETH_P_ARP);
        BinaryPrimitives.WriteInt32LittleEndian(to[4..], _link.Index);
        to[11] = 6;
        to.Slice(12, 6).Fill(0xff);
        fixed (byte* bytes = packet)
        {
            if (Interop.SendTo(_packet.Fd, bytes, ArpPacketSize, 0, destination, Interop.SockAddrLinkLayerSize) != ArpPacketSize)
            {
                throw new IOException($"cannot send a gratuitous ARP for {address} on {_link.Name}: {Interop.Describe(Marshal.GetLastPInvokeError())}");
            }
        }
    }

    private void AnnounceAdvertisement(IPAddress address)
    {
        if (_icmp is null)
        {
            throw new IOException($"cannot announce {address} on {_link.Name}: no ICMPv6 socket ({_icmpUnavailable?.Message})", _icmpUnavailable);
        }

        Span<byte> message = stackalloc byte[AdvertisementSize];
        message.Clear();
        message[0] = 136;                                            // neighbour advertisement; the kernel sums it
        message[4] = 0x20;                                           // override: replace what caches hold
        address.GetAddressBytes().CopyTo(message[8..]);
        message[24] = 2;                                             // option: target link-layer address
        message[25] = 1;                                             // its length in units of 8 bytes
        _link.HardwareAddress.GetAddressBytes().CopyTo(message[26..]);
        try
        {
            // The kernel picks the source among the interface's usable addresses: the announced one (added without
            // duplicate address detection) qualifies even while the link-local one is still tentative.
            var allNodes = IPAddress.Parse("ff02::1");
            allNodes.ScopeId = _link.Index;
            _icmp.SendTo(message, new IPEndPoint(allNodes, 0));
        }
        catch (SocketException e)
        {
            throw new IOException($"cannot send a neighbour advertisement for {address} on {_link.Name}: {e.Message}", e);
        }
    }
}
