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
        ArgumentException.ThrowIfNullOrEmpty(name);
        var bytes = Encoding.ASCII.GetBytes(name);
        if (bytes.Length >= Interop.IfNameSize)
        {
            throw new ArgumentException($"interface name \"{name}\" is longer than the kernel's {Interop.IfNameSize - 1} characters", nameof(name));
        }

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

    private static void Check(int result, string name, string what)
    {
        if (result == 0)
        {
            return;
        }

        var errno = Marshal.GetLastPInvokeError();
        throw new IOException(errno == Interop.Errno.ENODEV
            ? $"network interface \"{name}\" does not exist (in this network namespace)"
            : $"cannot read the {what} of interface \"{name}\": {Interop.Describe(errno)}");
    }
}
