using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AppHb.Linux.Files;

/// <summary>What statx says of a path: its type and permission bits, owner, group and modification time to the
/// nanosecond (.NET's file times stop at 100 ns, so a time copied through them would never compare equal).</summary>
/// <param name="Mode">The file type and permission bits (st_mode).</param>
public readonly record struct FileStatus(uint Mode, uint Owner, uint Group, long ModifiedNanoseconds)
{
    private const uint TypeMask = 0xF000;

    public bool IsRegularFile => (Mode & TypeMask) == 0x8000;

    public bool IsDirectory => (Mode & TypeMask) == 0x4000;

    /// <summary>The permission bits alone (with set-id and sticky).</summary>
    public uint Permissions => Mode & 0xFFF;

    /// <summary>The status of <paramref name="path"/> (a symlink followed unless <paramref name="followSymlinks"/>
    /// is false), or null when nothing is there any more.</summary>
    /// <exception cref="IOException">statx refused for another reason (the message names the path).</exception>
    public static FileStatus? Of(string path, bool followSymlinks = true)
    {
        Span<byte> buffer = stackalloc byte[Interop.StatxSize];
        var errno = Interop.StatxInto(path, followSymlinks ? 0 : Interop.AT_SYMLINK_NOFOLLOW,
            Interop.STATX_TYPE | Interop.STATX_MODE | Interop.STATX_UID | Interop.STATX_GID | Interop.STATX_MTIME, buffer);
        if (errno != 0)
        {
            return errno is Interop.Errno.ENOENT or Interop.Errno.ENOTDIR
                ? null
                : throw new IOException($"{path}: statx failed: {Interop.Describe(errno)}");
        }

        var seconds = BinaryPrimitives.ReadInt64LittleEndian(buffer[Interop.StatxMtimeOffset..]);
        var nanoseconds = BinaryPrimitives.ReadUInt32LittleEndian(buffer[(Interop.StatxMtimeOffset + 8)..]);
        return new FileStatus(
            BinaryPrimitives.ReadUInt16LittleEndian(buffer[Interop.StatxModeOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer[Interop.StatxUidOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer[Interop.StatxGidOffset..]),
            (seconds * 1_000_000_000L) + nanoseconds);
    }
}

/// <summary>Sets modification times to the nanosecond (utimensat, futimens), leaving access times alone.</summary>
public static class FileTimes
{
    /// <summary>Sets the modification time of the open file <paramref name="file"/>: after its last write (a
    /// write sets it again), so a buffered stream is flushed to the kernel first.</summary>
    /// <exception cref="IOException">The kernel refused (the message names <paramref name="name"/>).</exception>
    public static unsafe void SetModified(SafeFileHandle file, long nanosecondsSinceEpoch, string name)
    {
        ArgumentNullException.ThrowIfNull(file);
        var times = stackalloc Interop.TimeSpec[2];
        Fill(times, nanosecondsSinceEpoch);
        if (Interop.Futimens(file, times) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{name}: setting its modification time failed: {Interop.Describe(errno)}");
        }
    }

    /// <summary>Sets the modification time of <paramref name="path"/> (a symlink followed).</summary>
    /// <exception cref="IOException">The kernel refused (the message names the path).</exception>
    public static unsafe void SetModified(string path, long nanosecondsSinceEpoch)
    {
        ArgumentNullException.ThrowIfNull(path);
        var times = stackalloc Interop.TimeSpec[2];
        Fill(times, nanosecondsSinceEpoch);
        if (Interop.Utimensat(Interop.AT_FDCWD, path, times, 0) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{path}: setting its modification time failed: {Interop.Describe(errno)}");
        }
    }

    /// <summary>Nanoseconds since 1970 as a timespec's seconds and nanoseconds: the seconds rounded down, so the
    /// nanoseconds are never negative (before 1970 too).</summary>
    public static (long Seconds, long Nanoseconds) Split(long nanoseconds)
    {
        var seconds = Math.DivRem(nanoseconds, 1_000_000_000L, out var rest);
        return rest < 0 ? (seconds - 1, rest + 1_000_000_000L) : (seconds, rest);
    }

    private static unsafe void Fill(Interop.TimeSpec* times, long nanoseconds)
    {
        var (seconds, rest) = Split(nanoseconds);
        times[0] = new Interop.TimeSpec { Seconds = 0, Nanoseconds = Interop.UTIME_OMIT };
        times[1] = new Interop.TimeSpec { Seconds = seconds, Nanoseconds = rest };
    }
}
