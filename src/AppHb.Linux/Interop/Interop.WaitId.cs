using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    // include/uapi/linux/wait.h and asm-generic/siginfo.h.
    internal const int P_ALL = 0;
    internal const int P_PID = 1;
    internal const int WNOHANG = 0x1;
    internal const int WEXITED = 0x4;
    internal const int WNOWAIT = 0x01000000;
    internal const int CLD_EXITED = 1;
    internal const int CLD_KILLED = 2;
    internal const int CLD_DUMPED = 3;
    internal const int ECHILD = 10;

    /// <summary>siginfo_t is 128 bytes; for SIGCHLD si_code is at 8, si_pid at 16 and si_status at 24 on every
    /// 64-bit ABI (the union starts after three ints and padding).</summary>
    internal const int SigInfoSize = 128;
    internal const int SigInfoCodeOffset = 8;
    internal const int SigInfoPidOffset = 16;
    internal const int SigInfoStatusOffset = 24;

    [LibraryImport(Libc, EntryPoint = "waitid", SetLastError = true)]
    internal static unsafe partial int WaitId(int idType, int id, byte* info, int options);
}
