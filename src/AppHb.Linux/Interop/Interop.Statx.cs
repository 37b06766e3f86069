using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>include/uapi/linux/fcntl.h and stat.h: statx's arguments. struct statx has one layout on every
    /// architecture (fixed-size fields), unlike struct stat; its offsets are checked against the header.</summary>
    internal const int AT_FDCWD = -100;
    internal const uint STATX_MODE = 0x2;
    internal const uint STATX_UID = 0x8;
    internal const int StatxSize = 256;
    internal const int StatxUidOffset = 20;
    internal const int StatxGidOffset = 24;
    internal const int StatxModeOffset = 28;
    internal const int StatxNlinkOffset = 16;
    internal const int StatxDevMajorOffset = 136;
    internal const int StatxDevMinorOffset = 140;
    internal const uint STATX_NLINK = 0x4;
    internal const int AT_SYMLINK_NOFOLLOW = 0x100;

    [LibraryImport(Libc, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>statx of <paramref name="path"/> (relative to the working directory) into <paramref name="buffer"/>
    /// (<see cref="StatxSize"/> bytes).</summary>
    /// <returns>0, or the errno it failed with.</returns>
    internal static unsafe int StatxInto(string path, int flags, uint mask, Span<byte> buffer)
    {
        ArgumentNullException.ThrowIfNull(path);
        fixed (byte* at = buffer)
        {
            return Statx(AT_FDCWD, path, flags, mask, at) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }
}
