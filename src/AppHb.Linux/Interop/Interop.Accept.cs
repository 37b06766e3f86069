using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{

    internal const int SOCK_NONBLOCK = 0x800;

    /// <summary>accept4 without the peer's address (a Unix socket's client is unnamed; SO_PEERCRED says who it is).</summary>
    [LibraryImport(Libc, EntryPoint = "accept4", SetLastError = true)]
    internal static unsafe partial int Accept4(int fd, void* address, void* addressLength, int flags);

    [LibraryImport(Libc, EntryPoint = "getsockopt", SetLastError = true)]
    internal static unsafe partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);
}
