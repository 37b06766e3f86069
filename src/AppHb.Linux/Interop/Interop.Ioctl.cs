using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    // ioctl is variadic in C; on x86-64 and arm64 Linux a pointer-sized third argument is passed exactly as a
    // fixed one, which is how dotnet/iot's UnixDriver calls it too.
    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    internal static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    /// <summary>_IOC from include/uapi/asm-generic/ioctl.h: dir(2) | size(14) | type(8) | nr(8).</summary>
    internal static nuint IoctlNumber(uint direction, char type, uint number, int size) =>
        (nuint)((direction << 30) | ((uint)size << 16) | ((uint)type << 8) | number);

    internal const uint IocRead = 2;
    internal const uint IocWrite = 1;
}
