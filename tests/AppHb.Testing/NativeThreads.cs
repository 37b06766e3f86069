using System.Diagnostics;
using System.Runtime.InteropServices;

namespace AppHb.Testing;

/// <summary>Proof that a thread is blocked, instead of a sleep that hopes it is: the kernel's own state of the thread
/// (proc(5), /proc/self/task/TID/stat field 3).</summary>
public static partial class NativeThreads
{
    /// <summary>The calling thread's kernel id (gettid(2)).</summary>
    public static int CurrentId() => GetTid();

    /// <summary>Waits until thread <paramref name="tid"/> of this process sleeps in the kernel (state S), which a thread
    /// blocked on an eventfd, a futex or a socket does; fails after <paramref name="bound"/>.</summary>
    public static void WaitUntilSleeping(int tid, TimeSpan? bound = null)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
            if (stat[(stat.LastIndexOf(')') + 2)..].StartsWith('S'))
            {
                return;
            }

            if (watch.Elapsed > (bound ?? TimeSpan.FromSeconds(30)))
            {
                throw new TimeoutException($"thread {tid} never blocked: {stat}");
            }

            Thread.Yield();
        }
    }

    /// <summary>User and system time this process's threads whose name (comm) <paramref name="named"/> accepts have
    /// used (/proc/self/task/TID/stat fields 14 and 15, clock ticks of 10 ms); a thread that ends meanwhile counts
    /// for nothing.</summary>
    public static TimeSpan CpuTime(Func<string, bool> named)
    {
        ArgumentNullException.ThrowIfNull(named);
        long ticks = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (!named(File.ReadAllText(Path.Combine(task, "comm")).Trim()))
                {
                    continue;
                }

                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                // After the command's closing parenthesis: field 3 (state) first.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += long.Parse(fields[14 - 3], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[15 - 3], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Ended meanwhile.
            }
        }

        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
