using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "gettid")]
    internal static partial int GetTid();
}
