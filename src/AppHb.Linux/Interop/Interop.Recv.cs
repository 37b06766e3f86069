using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>include/uapi/linux/socket.h (bits/socket.h): look without taking, and never block.</summary>
    internal const int MSG_PEEK = 0x02;
    internal const int MSG_DONTWAIT = 0x40;
    internal const int MSG_NOSIGNAL = 0x4000;

    /// <summary>Read the socket's error queue (IP_RECVERR) instead of its data.</summary>
    internal const int MSG_ERRQUEUE = 0x2000;

    [LibraryImport(Libc, EntryPoint = "recv", SetLastError = true)]
    internal static unsafe partial nint Recv(int fd, void* buffer, nuint length, int flags);
}
