using System.Diagnostics;
using System.Globalization;

namespace AppHb.Benchmarks;

/// <summary>Process and machine facts the benchmarks read: CPU time, RSS, tools.</summary>
internal static class Machine
{
    private static readonly double TicksPerSecond = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

    public static TimeSpan CpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // utime and stime are fields 14 and 15; index 0 here is field 3.
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }

    public static double ResidentMegabytes(int pid)
    {
        if (!File.Exists($"/proc/{pid}/status"))
        {
            return double.NaN;
        }

        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }

        return double.NaN;
    }

    /// <summary>Proportional set size: shared pages (libc, the loader) divided among the processes sharing them, so
    /// that fifty small supervisor processes are not charged fifty copies of libc.</summary>
    public static double ProportionalMegabytes(int pid)
    {
        var path = $"/proc/{pid}/smaps_rollup";
        if (!File.Exists(path))
        {
            return double.NaN;
        }

        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith("Pss:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }

        return double.NaN;
    }

    public static string Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {output}");
        }

        return output;
    }

    public static int? FindPid(string commandLineFragment)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                var state = File.ReadAllText(Path.Combine(dir, "stat"));
                if (cmd.Contains(commandLineFragment, StringComparison.Ordinal) && !state.Contains(") Z ", StringComparison.Ordinal))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
        }

        return null;
    }

    /// <summary>Keeps one core busy (a shell spin loop) while alive: "the other core saturated".</summary>
    public sealed class CpuBurner : IDisposable
    {
        private readonly Process _process = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do :; done"]))!;

        public void Dispose()
        {
            _process.Kill();
            _process.WaitForExit();
            _process.Dispose();
        }
    }
}
