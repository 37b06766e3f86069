using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    internal const int MCL_CURRENT = 1;
    internal const int MCL_FUTURE = 2;
    internal const int MCL_ONFAULT = 4;

    [LibraryImport(Libc, EntryPoint = "mlockall", SetLastError = true)]
    internal static partial int MLockAll(int flags);
}
