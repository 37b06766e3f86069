using System.Net.NetworkInformation;
using System.Runtime.InteropServices;
using System.Text;

namespace AppHb.Linux.Network;

/// <summary>A network interface by name: its index (what rtnetlink and packet sockets address) and its hardware
/// address (what a gratuitous ARP announces). Resolved in the calling thread's network namespace, through ioctls on
/// a socket rather than /sys, whose view belongs to whoever mounted it.</summary>
public sealed record LinkInterface(string Name, int Index, PhysicalAddress HardwareAddress)
{
    /// <exception cref="IOException">No interface by that name here, or the kernel refused.</exception>
    public static unsafe LinkInterface Resolve(string name)
    {
        var bytes = NameBytes(name);
        var fd = Interop.Socket(Interop.AF_INET, Interop.SOCK_DGRAM | Interop.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new IOException($"cannot open a socket to look up interface \"{name}\": {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        try
        {
            var request = stackalloc byte[Interop.IfReqSize];
            new Span<byte>(request, Interop.IfReqSize).Clear();
            bytes.CopyTo(new Span<byte>(request, Interop.IfNameSize));
            Check(Interop.Ioctl(fd, Interop.SIOCGIFINDEX, request), name, "index");
            var index = *(int*)(request + Interop.IfNameSize);
            Check(Interop.Ioctl(fd, Interop.SIOCGIFHWADDR, request), name, "hardware address");
            // ifr_hwaddr is a struct sockaddr: a 2-byte family, then the address in sa_data.
            var hardware = new PhysicalAddress(new ReadOnlySpan<byte>(request + Interop.IfNameSize + 2, 6).ToArray());
            return new LinkInterface(name, index, hardware);
        }
        finally
        {
            _ = Interop.Close(fd);
        }
    }

    /// <summary>Whether the interface is administratively up (IFF_UP), in the calling thread's network namespace.</summary>
    /// <exception cref="IOException">No interface by that name here, or the kernel refused.</exception>
    public static bool IsUp(string name) => (ClearFlags(name, 0) & Interop.IFF_UP) != 0;

    /// <summary>Sets the interface administratively down (what <c>ip link set NAME down</c> does): every address on it
    /// stops answering at once. True when it was up.</summary>
    /// <exception cref="IOException">No interface by that name here, or the kernel refused.</exception>
    public static bool SetDown(string name) => (ClearFlags(name, Interop.IFF_UP) & Interop.IFF_UP) != 0;

    /// <summary>Reads the interface's flags and clears <paramref name="clear"/> among them (when any is set); returns
    /// the flags as they were.</summary>
    private static unsafe short ClearFlags(string name, short clear)
    {
        var bytes = NameBytes(name);
        var fd = Interop.Socket(Interop.AF_INET, Interop.SOCK_DGRAM | Interop.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new IOException($"cannot open a socket for interface \"{name}\": {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        try
        {
            var request = stackalloc byte[Interop.IfReqSize];
            new Span<byte>(request, Interop.IfReqSize).Clear();
            bytes.CopyTo(new Span<byte>(request, Interop.IfNameSize));
            Check(Interop.Ioctl(fd, Interop.SIOCGIFFLAGS, request), name, "flags");
            // ifr_flags is a short right after the name.
            var flags = (short*)(request + Interop.IfNameSize);
            var before = *flags;
            if ((before & clear) != 0)
            {
                *flags = (short)(before & ~clear);
                Check(Interop.Ioctl(fd, Interop.SIOCSIFFLAGS, request), name, "flags (setting them)");
            }

            return before;
        }
        finally
        {
            _ = Interop.Close(fd);
        }
    }

    private static byte[] NameBytes(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var bytes = Encoding.ASCII.GetBytes(name);
        return bytes.Length < Interop.IfNameSize
            ? bytes
            : throw new ArgumentException($"interface name \"{name}\" is longer than the kernel's {Interop.IfNameSize - 1} characters", nameof(name));
    }

    private static void Check(int result, string name, string what)
    {
        if (result == 0)
        {
            return;
        }

        var errno = Marshal.GetLastPInvokeError();
        throw new IOException(errno == Interop.Errno.ENODEV
            ? $"network interface \"{name}\" does not exist (in this network namespace)"
            : $"cannot use the {what} of interface \"{name}\": {Interop.Describe(errno)}");
    }
}
