using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>sync(2): schedules every dirty page (mmap'd journal files included) to be written.</summary>
    [LibraryImport(Libc, EntryPoint = "sync")]
    internal static partial void Sync();
}
