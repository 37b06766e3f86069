using System.Runtime.InteropServices;

namespace AppHb.Linux.Realtime;

/// <summary>The realtime policy for the daemon's critical threads.</summary>
public enum RealtimePolicy
{
    Fifo,
    RoundRobin,
}

/// <summary>What an attempt at soft-realtime operation achieved. <see cref="Applied"/> false with a message means
/// the daemon runs on, degraded, and says why.</summary>
public readonly record struct RealtimeOutcome(bool Applied, string Description);

/// <summary>Soft realtime as Linux-HA's apphbd does it: memory locked so the tickle path never page-faults, and the
/// tickle and event threads on a realtime policy so a busy box cannot starve them.</summary>
public static class RealtimeScheduling
{
    /// <summary>mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): every page the daemon touches stays resident,
    /// and nothing it merely reserved is faulted in. A managed runtime reserves far more than it uses (thread stacks,
    /// GC regions); locking it all up front would cost hundreds of MB of RAM for no gain. Kernels before 4.4 lack
    /// MCL_ONFAULT (EINVAL): they get the classic full lock.</summary>
    public static RealtimeOutcome LockMemory()
    {
        if (Interop.MLockAll(Interop.MCL_CURRENT | Interop.MCL_FUTURE | Interop.MCL_ONFAULT) == 0)
        {
            return new RealtimeOutcome(true, "memory locked (mlockall current and future, on fault)");
        }

        if (Marshal.GetLastPInvokeError() == Interop.Errno.EINVAL
            && Interop.MLockAll(Interop.MCL_CURRENT | Interop.MCL_FUTURE) == 0)
        {
            return new RealtimeOutcome(true, "memory locked (mlockall current and future; this kernel has no MCL_ONFAULT)");
        }

        var errno = Marshal.GetLastPInvokeError();
        var hint = errno is Interop.Errno.EPERM or Interop.Errno.ENOMEM
            ? " (needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK; systemd: LimitMEMLOCK=infinity)"
            : string.Empty;
        return new RealtimeOutcome(false, $"mlockall failed: {Interop.Describe(errno)}{hint}");
    }

    /// <summary>Puts the calling thread on a realtime policy at <paramref name="priority"/> (1..99).</summary>
    public static unsafe RealtimeOutcome ApplyToCurrentThread(RealtimePolicy policy, int priority)
    {
        var native = policy == RealtimePolicy.Fifo ? Interop.SCHED_FIFO : Interop.SCHED_RR;
        var min = Interop.SchedGetPriorityMin(native);
        var max = Interop.SchedGetPriorityMax(native);
        if (priority < min || priority > max)
        {
            return new RealtimeOutcome(false, $"priority {priority} is outside {min}..{max} for {Name(policy)}");
        }

        var parameter = new Interop.SchedParam { Priority = priority };
        // The exit watcher and the deadline loop respawn services: without reset-on-fork every service they start
        // would run SCHED_FIFO too, able to starve the whole node.
        if (Interop.SchedSetScheduler(0, native | Interop.SCHED_RESET_ON_FORK, &parameter) == 0)
        {
            return new RealtimeOutcome(true, $"{Name(policy)} priority {priority}");
        }

        var errno = Marshal.GetLastPInvokeError();
        var hint = errno == Interop.Errno.EPERM
            ? " (needs CAP_SYS_NICE or RLIMIT_RTPRIO; in a container or a cgroup without an RT budget this is refused)"
            : string.Empty;
        return new RealtimeOutcome(false, $"{Name(policy)} priority {priority} refused: {Interop.Describe(errno)}{hint}");
    }

    /// <summary>Reads back the calling thread's policy from /proc, so status reports what is, not what was asked.</summary>
    public static string DescribeThread(int threadId)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/self/task/{threadId}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // Fields after the command: index 0 is field 3 (state); rt_priority is field 40, policy field 41.
            var rtPriority = fields[40 - 3];
            var policy = fields[41 - 3] switch { "1" => "SCHED_FIFO", "2" => "SCHED_RR", "0" => "SCHED_OTHER", var p => $"policy {p}" };
            return rtPriority == "0" ? policy : $"{policy} {rtPriority}";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static string Name(RealtimePolicy policy) => policy == RealtimePolicy.Fifo ? "SCHED_FIFO" : "SCHED_RR";
}
