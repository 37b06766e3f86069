using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    internal const int ESRCH = 3;

    // glibc 2.36+ exports pidfd_open (Linux 5.3+): a descriptor that becomes readable when the process exits.
    [LibraryImport(Libc, EntryPoint = "pidfd_open", SetLastError = true)]
    internal static partial int PidfdOpen(int pid, uint flags);
}
