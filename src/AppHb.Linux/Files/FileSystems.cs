using System.Buffers.Binary;

namespace AppHb.Linux.Files;

/// <summary>Which filesystem a path is on (statx's device numbers): a rename, or a hard link, stays on one.</summary>
public static class FileSystems
{
    /// <summary>The device (major, minor) holding <paramref name="path"/>, as statx reports it.</summary>
    /// <exception cref="IOException">statx refused (the message names the path).</exception>
    public static (uint Major, uint Minor) DeviceOf(string path)
    {
        // The device is among the basic fields statx always fills in; no mask bit asks for it.
        Span<byte> buffer = stackalloc byte[Interop.StatxSize];
        Stat(path, Interop.STATX_MODE, buffer);
        return (BinaryPrimitives.ReadUInt32LittleEndian(buffer[Interop.StatxDevMajorOffset..]), BinaryPrimitives.ReadUInt32LittleEndian(buffer[Interop.StatxDevMinorOffset..]));
    }

    /// <summary>How many names (hard links) the file <paramref name="path"/> has.</summary>
    /// <exception cref="IOException">statx refused (the message names the path).</exception>
    public static uint LinkCount(string path)
    {
        Span<byte> buffer = stackalloc byte[Interop.StatxSize];
        Stat(path, Interop.STATX_NLINK, buffer);
        return BinaryPrimitives.ReadUInt32LittleEndian(buffer[Interop.StatxNlinkOffset..]);
    }

    /// <summary>statx of <paramref name="path"/> itself (a symlink not followed) into <paramref name="buffer"/>.</summary>
    private static void Stat(string path, uint mask, Span<byte> buffer)
    {
        if (Interop.StatxInto(path, Interop.AT_SYMLINK_NOFOLLOW, mask, buffer) is var errno and not 0)
        {
            throw new IOException($"{path}: statx failed: {Interop.Describe(errno)}");
        }
    }
}
