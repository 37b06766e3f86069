using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>sync(2): schedules every dirty page (mmap'd journal files included) to be written.</summary>
    [LibraryImport(Libc, EntryPoint = "sync")]
    internal static partial void Sync();

    /// <summary>fsync(2): the file's data and metadata are on stable storage when it returns.</summary>
    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    internal static partial int FSync(int fd);

    /// <summary>fdatasync(2): the file's data, and the metadata needed to read it back (its size), are on stable
    /// storage when it returns; a change of its times alone is not written.</summary>
    [LibraryImport(Libc, EntryPoint = "fdatasync", SetLastError = true)]
    internal static partial int FDataSync(int fd);

    /// <summary>syncfs(2): everything written to the filesystem holding the descriptor is on stable storage when it
    /// returns: one call where a batch of files would each need an fsync.</summary>
    [LibraryImport(Libc, EntryPoint = "syncfs", SetLastError = true)]
    internal static partial int SyncFs(int fd);

    /// <summary>sync_file_range(2): with <see cref="SYNC_FILE_RANGE_WRITE"/>, starts writing the range's dirty pages
    /// and returns without waiting (it makes nothing durable: no metadata, no disk cache flush).</summary>
    [LibraryImport(Libc, EntryPoint = "sync_file_range", SetLastError = true)]
    internal static partial int SyncFileRange(int fd, long offset, long count, uint flags);

    internal const uint SYNC_FILE_RANGE_WRITE = 2;

    internal const int O_DIRECTORY = 0x10000;
}
