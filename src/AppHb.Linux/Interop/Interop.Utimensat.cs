using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>include/uapi/linux/stat.h: a times[] entry left as it is.</summary>
    internal const long UTIME_OMIT = (1L << 30) - 2;
    internal const uint STATX_TYPE = 0x1;
    internal const uint STATX_GID = 0x10;
    internal const uint STATX_MTIME = 0x40;
    internal const int StatxMtimeOffset = 112;

    /// <param name="times">Two timespecs: the access time, then the modification time.</param>
    [LibraryImport(Libc, EntryPoint = "utimensat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static unsafe partial int Utimensat(int dirfd, string path, TimeSpec* times, int flags);

    [LibraryImport(Libc, EntryPoint = "futimens", SetLastError = true)]
    internal static unsafe partial int Futimens(SafeHandle fd, TimeSpec* times);
}
