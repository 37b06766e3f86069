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

    internal const int O_DIRECTORY = 0x10000;
}
