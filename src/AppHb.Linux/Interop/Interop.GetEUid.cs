using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "geteuid")]
    internal static partial uint GetEUid();
}
