using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    // include/uapi/linux/prctl.h
    internal const int PR_SET_CHILD_SUBREAPER = 36;
    internal const int PR_GET_CHILD_SUBREAPER = 37;

    [LibraryImport(Libc, EntryPoint = "prctl", SetLastError = true)]
    internal static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
