using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "send", SetLastError = true)]
    internal static unsafe partial nint Send(int fd, void* buffer, nuint length, int flags);
}
