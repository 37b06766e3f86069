using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    internal const nint SIG_DFL = 0;
    internal const nint SIG_ERR = -1;

    /// <summary>signal(2): sets a signal's disposition; the previous one, or SIG_ERR.</summary>
    [LibraryImport(Libc, EntryPoint = "signal", SetLastError = true)]
    internal static partial nint Signal(int signal, nint handler);
}
