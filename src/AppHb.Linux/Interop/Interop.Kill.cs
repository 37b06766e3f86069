using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>kill(2); a negative pid signals the whole process group.</summary>
    [LibraryImport(Libc, EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}
