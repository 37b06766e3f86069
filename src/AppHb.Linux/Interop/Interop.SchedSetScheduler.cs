using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    internal const int SCHED_OTHER = 0;
    internal const int SCHED_FIFO = 1;
    internal const int SCHED_RR = 2;

    /// <summary>Or'ed into the policy: children (posix_spawn included) start on SCHED_OTHER at nice 0 instead of
    /// inheriting the realtime policy of the thread that spawned them (include/uapi/linux/sched.h).</summary>
    internal const int SCHED_RESET_ON_FORK = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    internal struct SchedParam
    {
        public int Priority;
    }

    /// <summary>With pid 0 this applies to the calling thread only (Linux schedules threads, not processes).</summary>
    [LibraryImport(Libc, EntryPoint = "sched_setscheduler", SetLastError = true)]
    internal static unsafe partial int SchedSetScheduler(int pid, int policy, SchedParam* parameter);

    [LibraryImport(Libc, EntryPoint = "sched_get_priority_max", SetLastError = true)]
    internal static partial int SchedGetPriorityMax(int policy);

    [LibraryImport(Libc, EntryPoint = "sched_get_priority_min", SetLastError = true)]
    internal static partial int SchedGetPriorityMin(int policy);
}
