using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "umask")]
    internal static partial uint Umask(uint mask);
}
