using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Files;

/// <summary>Which filesystem a path is on (statx's device numbers): a rename, or a hard link, stays on one.</summary>
public static class FileSystems
{
    /// <summary>The device (major, minor) holding <paramref name="path"/>, as statx reports it.</summary>
    /// <exception cref="IOException">statx refused (the message names the path).</exception>
    public static unsafe (uint Major, uint Minor) DeviceOf(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var buffer = stackalloc byte[Interop.StatxSize];
        // The device is among the basic fields statx always fills in; no mask bit asks for it.
        if (Interop.Statx(Interop.AT_FDCWD, path, Interop.AT_SYMLINK_NOFOLLOW, Interop.STATX_MODE, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{path}: statx failed: {Interop.Describe(errno)}");
        }

        var span = new ReadOnlySpan<byte>(buffer, Interop.StatxSize);
        return (BinaryPrimitives.ReadUInt32LittleEndian(span[Interop.StatxDevMajorOffset..]), BinaryPrimitives.ReadUInt32LittleEndian(span[Interop.StatxDevMinorOffset..]));
    }

    /// <summary>How many names (hard links) the file <paramref name="path"/> has.</summary>
    /// <exception cref="IOException">statx refused (the message names the path).</exception>
    public static unsafe uint LinkCount(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var buffer = stackalloc byte[Interop.StatxSize];
        if (Interop.Statx(Interop.AT_FDCWD, path, Interop.AT_SYMLINK_NOFOLLOW, Interop.STATX_NLINK, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{path}: statx failed: {Interop.Describe(errno)}");
        }

        return BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(buffer, Interop.StatxSize)[Interop.StatxNlinkOffset..]);
    }

}
