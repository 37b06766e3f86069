using System.Globalization;

namespace AppHb.Linux.Processes;

/// <summary>Reads pidfiles and decides whether the pid in one still names the process that wrote it.</summary>
public static class PidFile
{
    /// <summary>USER_HZ: the unit of /proc/PID/stat times, fixed at 100 for every Linux ABI (man 5 proc).</summary>
    private const double ClockTicksPerSecond = 100;

    /// <summary>A pid that is alive, started no later than the pidfile was written, so it is the writer (or the
    /// writer's parent) and not an unrelated process that reused the pid after the service died.</summary>
    /// <returns>The pid, or null with <paramref name="reason"/> saying why not.</returns>
    public static int? FindLiveOwner(string path, out string reason)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        DateTimeOffset written;
        try
        {
            text = File.ReadAllText(path).Trim();
            written = File.GetLastWriteTimeUtc(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = $"{path}: {e.Message}";
            return null;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid < 2)
        {
            reason = $"{path}: \"{(text.Length > 20 ? text[..20] + "..." : text)}\" is not a pid";
            return null;
        }

        if (TryGetStartTime(pid) is not { } started)
        {
            reason = $"{path}: pid {pid} is not running";
            return null;
        }

        // Start times have 10 ms resolution and the boot-time estimate a little jitter: allow a tick's worth.
        if (started > written + TimeSpan.FromMilliseconds(50))
        {
            reason = $"{path}: pid {pid} started at {started:HH:mm:ss.fff}, after the pidfile was written at {written:HH:mm:ss.fff}: the pid was reused by another process";
            return null;
        }

        reason = string.Empty;
        return pid;
    }

    /// <summary>When a process started (wall clock), from /proc/PID/stat; null if it does not exist.</summary>
    public static DateTimeOffset? TryGetStartTime(int pid)
    {
        string stat;
        string uptime;
        try
        {
            stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            uptime = File.ReadAllText("/proc/uptime");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // The command name in field 2 may hold spaces and parentheses: fields are counted after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        if (fields.Length < 20 || !ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
            || !double.TryParse(uptime.AsSpan(0, uptime.IndexOf(' ')), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var upSeconds))
        {
            return null;
        }

        // Both start time and /proc/uptime count from boot on CLOCK_BOOTTIME.
        var bootedAt = DateTimeOffset.UtcNow - TimeSpan.FromSeconds(upSeconds);
        return bootedAt + TimeSpan.FromSeconds(ticks / ClockTicksPerSecond);
    }
}
