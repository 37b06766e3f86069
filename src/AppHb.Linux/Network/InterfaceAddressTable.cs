using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Network;

/// <summary>An address on an interface, as the kernel lists it.</summary>
public sealed record InterfaceAddress(int InterfaceIndex, IPAddress Address, int PrefixLength);

/// <summary>The kernel's interface addresses through rtnetlink (what <c>ip address add/del/show</c> does, without
/// running it): the service IP is taken and released here. One request at a time; every change is acknowledged by
/// the kernel before the call returns, and a refusal is an exception naming the address, the interface and the
/// kernel's reason.</summary>
public sealed class InterfaceAddressTable : IDisposable
{
    private const int ReceiveBufferSize = 32 * 1024;
    private readonly Interop.FileDescriptorHandle _socket;
    private uint _sequence;

    private InterfaceAddressTable(Interop.FileDescriptorHandle socket) => _socket = socket;

    /// <summary>Opens a route netlink socket in the calling thread's network namespace.</summary>
    public static unsafe InterfaceAddressTable Open()
    {
        var fd = Interop.Socket(Interop.AF_NETLINK, Interop.SOCK_RAW | Interop.SOCK_CLOEXEC, Interop.NETLINK_ROUTE);
        if (fd < 0)
        {
            throw new IOException($"cannot open a route netlink socket: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        var socket = new Interop.FileDescriptorHandle(fd);
        var address = stackalloc byte[Interop.SockAddrNetlinkSize];
        new Span<byte>(address, Interop.SockAddrNetlinkSize).Clear();
        *(ushort*)address = Interop.AF_NETLINK;
        if (Interop.Bind(fd, address, Interop.SockAddrNetlinkSize) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            socket.Dispose();
            throw new IOException($"cannot bind a route netlink socket: {Interop.Describe(errno)}");
        }

        return new InterfaceAddressTable(socket);
    }

    /// <summary>Adds the address; false when the interface already has it. An IPv6 address is added without duplicate
    /// address detection: a takeover happens after the peer was fenced or released it, and DAD would keep it unusable
    /// (tentative) for a second or more.</summary>
    public bool Add(int interfaceIndex, IPAddress address, int prefixLength)
    {
        var error = Change(Interop.Netlink.NewAddress, Interop.Netlink.Create | Interop.Netlink.Exclusive, interfaceIndex, address, prefixLength);
        return error switch
        {
            0 => true,
            Interop.Netlink.EEXIST => false,
            _ => throw Refused("add", address, prefixLength, interfaceIndex, error),
        };
    }

    /// <summary>Removes the address; false when the interface did not have it.</summary>
    public bool Remove(int interfaceIndex, IPAddress address, int prefixLength)
    {
        var error = Change(Interop.Netlink.DeleteAddress, 0, interfaceIndex, address, prefixLength);
        return error switch
        {
            0 => true,
            Interop.Netlink.EADDRNOTAVAIL => false,
            _ => throw Refused("remove", address, prefixLength, interfaceIndex, error),
        };
    }

    /// <summary>Every address on every interface (IPv4 and IPv6).</summary>
    public IReadOnlyList<InterfaceAddress> List()
    {
        Span<byte> request = stackalloc byte[Interop.Netlink.HeaderSize + Interop.Netlink.AddressMessageSize];
        request.Clear();
        var sequence = ++_sequence;
        WriteHeader(request, request.Length, Interop.Netlink.GetAddress, Interop.Netlink.Request | Interop.Netlink.Dump, sequence);
        Send(request);
        var found = new List<InterfaceAddress>();
        var buffer = new byte[ReceiveBufferSize];
        while (true)
        {
            var messages = new Messages(buffer.AsSpan(0, Receive(buffer)));
            while (messages.Next(out var type, out var received, out var message))
            {
                if (received != sequence)
                {
                    continue;
                }

                switch (type)
                {
                    case Interop.Netlink.Done:
                        return found;
                    case Interop.Netlink.Error when Messages.Errno(message) is var errno and > 0:
                        throw new IOException($"cannot list interface addresses: {Interop.Describe(errno)}");
                    case Interop.Netlink.NewAddress when ParseAddress(message) is { } address:
                        found.Add(address);
                        break;
                }
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    private int Change(ushort type, ushort flags, int interfaceIndex, IPAddress address, int prefixLength)
    {
        var family = address.AddressFamily switch
        {
            AddressFamily.InterNetwork => Interop.AF_INET,
            AddressFamily.InterNetworkV6 => Interop.AF_INET6,
            _ => throw new ArgumentException($"{address} is neither IPv4 nor IPv6", nameof(address)),
        };
        var bytes = address.GetAddressBytes();
        ArgumentOutOfRangeException.ThrowIfNegative(prefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(prefixLength, bytes.Length * 8);

        Span<byte> request = stackalloc byte[128];
        request.Clear();
        var at = Interop.Netlink.HeaderSize;
        request[at] = (byte)family;
        request[at + 1] = (byte)prefixLength;
        BinaryPrimitives.WriteInt32LittleEndian(request[(at + 4)..], interfaceIndex);
        at += Interop.Netlink.AddressMessageSize;
        // IPv4 names the local address twice (IFA_LOCAL is this host's, IFA_ADDRESS the peer's on point-to-point
        // links, the same otherwise); IPv6 uses IFA_ADDRESS alone.
        if (family == Interop.AF_INET)
        {
            at = WriteAttribute(request, at, Interop.Netlink.AttributeLocal, bytes);
        }

        at = WriteAttribute(request, at, Interop.Netlink.AttributeAddress, bytes);
        if (family == Interop.AF_INET6 && type == Interop.Netlink.NewAddress)
        {
            Span<byte> noDad = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(noDad, Interop.Netlink.FlagNoDad);
            at = WriteAttribute(request, at, Interop.Netlink.AttributeFlags, noDad);
        }

        var sequence = ++_sequence;
        WriteHeader(request, at, type, (ushort)(Interop.Netlink.Request | Interop.Netlink.Ack | flags), sequence);
        Send(request[..at]);
        return AwaitAcknowledgement(sequence);
    }

    /// <summary>The kernel's answer to one request: 0, or the errno it refused with.</summary>
    private int AwaitAcknowledgement(uint sequence)
    {
        Span<byte> buffer = stackalloc byte[4096];
        while (true)
        {
            var messages = new Messages(buffer[..Receive(buffer)]);
            while (messages.Next(out var type, out var received, out var message))
            {
                if (type == Interop.Netlink.Error && received == sequence)
                {
                    return Messages.Errno(message);
                }
            }
        }
    }

    private static InterfaceAddress? ParseAddress(ReadOnlySpan<byte> message)
    {
        var header = message[Interop.Netlink.HeaderSize..];
        if (header.Length < Interop.Netlink.AddressMessageSize)
        {
            return null;
        }

        var family = header[0];
        var prefix = header[1];
        var index = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        var expected = family == Interop.AF_INET ? 4 : family == Interop.AF_INET6 ? 16 : 0;
        byte[]? local = null, address = null;
        for (var attributes = header[Interop.Netlink.AddressMessageSize..]; attributes.Length >= Interop.Netlink.AttributeHeaderSize;)
        {
            var length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
            var type = BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]);
            if (length < Interop.Netlink.AttributeHeaderSize || length > attributes.Length)
            {
                break;
            }

            var value = attributes[Interop.Netlink.AttributeHeaderSize..length];
            if (value.Length == expected && type == Interop.Netlink.AttributeLocal)
            {
                local = value.ToArray();
            }
            else if (value.Length == expected && type == Interop.Netlink.AttributeAddress)
            {
                address = value.ToArray();
            }

            attributes = attributes[Math.Min(Align(length), attributes.Length)..];
        }

        var chosen = local ?? address;
        return chosen is null ? null : new InterfaceAddress(index, new IPAddress(chosen), prefix);
    }

    private static void WriteHeader(Span<byte> message, int length, ushort type, ushort flags, uint sequence)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(message[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(message[6..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(message[8..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(message[12..], 0);
    }

    private static int WriteAttribute(Span<byte> message, int at, ushort type, ReadOnlySpan<byte> value)
    {
        var length = Interop.Netlink.AttributeHeaderSize + value.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(message[at..], (ushort)length);
        BinaryPrimitives.WriteUInt16LittleEndian(message[(at + 2)..], type);
        value.CopyTo(message[(at + Interop.Netlink.AttributeHeaderSize)..]);
        return at + Align(length);
    }

    private static int Align(int length) => (length + 3) & ~3;

    private unsafe void Send(ReadOnlySpan<byte> message)
    {
        fixed (byte* bytes = message)
        {
            // No destination: a bound netlink socket sends to the kernel.
            if (Interop.Send(_socket.Fd, bytes, (nuint)message.Length, 0) != message.Length)
            {
                throw new IOException($"cannot send to rtnetlink: {Interop.Describe(Marshal.GetLastPInvokeError())}");
            }
        }
    }

    private unsafe int Receive(Span<byte> buffer)
    {
        while (true)
        {
            fixed (byte* bytes = buffer)
            {
                var read = Interop.Recv(_socket.Fd, bytes, (nuint)buffer.Length, 0);
                if (read > 0)
                {
                    return (int)read;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (read < 0 && errno == Interop.Errno.EINTR)
                {
                    continue;
                }

                throw new IOException($"cannot read from rtnetlink: {(read == 0 ? "closed" : Interop.Describe(errno))}");
            }
        }
    }

    private static IOException Refused(string what, IPAddress address, int prefixLength, int interfaceIndex, int errno) =>
        new($"cannot {what} {address}/{prefixLength} on interface index {interfaceIndex}: {Interop.Describe(errno)}");

    /// <summary>The netlink messages of one datagram, in order, each checked against the datagram's bounds: what the
    /// acknowledgement and the dump both read.</summary>
    private ref struct Messages(ReadOnlySpan<byte> datagram)
    {
        private readonly ReadOnlySpan<byte> _datagram = datagram;
        private int _at;

        public bool Next(out ushort type, out uint sequence, out ReadOnlySpan<byte> message)
        {
            type = 0;
            sequence = 0;
            message = default;
            if (_at + Interop.Netlink.HeaderSize > _datagram.Length)
            {
                return false;
            }

            var rest = _datagram[_at..];
            var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(rest);
            if (size < Interop.Netlink.HeaderSize || size > rest.Length)
            {
                throw new IOException($"rtnetlink sent a malformed message (length {size} at offset {_at} of {_datagram.Length})");
            }

            type = BinaryPrimitives.ReadUInt16LittleEndian(rest[4..]);
            sequence = BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]);
            message = rest[..size];
            _at += Align(size);
            return true;
        }

        /// <summary>The errno an NLMSG_ERROR message carries (0: an acknowledgement).</summary>
        public static int Errno(ReadOnlySpan<byte> message) => message.Length >= Interop.Netlink.HeaderSize + 4
            ? -BinaryPrimitives.ReadInt32LittleEndian(message[Interop.Netlink.HeaderSize..])
            : throw new IOException($"rtnetlink sent an error message of {message.Length} bytes, too short for its error code");
    }
}
