using System.Globalization;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Realtime;

/// <summary>The daemon holds two descriptors per client (its socket and its pidfd). This raises RLIMIT_NOFILE to
/// what the configured client limit needs, up to the hard limit, or as root up to fs.nr_open.</summary>
public static class OpenFileLimit
{
    /// <returns>The limit now in force and, if it is still below <paramref name="needed"/>, why.</returns>
    public static unsafe (ulong Limit, string? Shortfall) Ensure(ulong needed)
    {
        Interop.RLimit limit;
        if (Interop.GetRLimit(Interop.RLIMIT_NOFILE, &limit) != 0)
        {
            return (0, $"getrlimit failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        if (limit.Current >= needed)
        {
            return (limit.Current, null);
        }

        var wanted = new Interop.RLimit { Current = needed, Maximum = Math.Max(limit.Maximum, needed) };
        if (wanted.Maximum > limit.Maximum)
        {
            // Raising the hard limit needs CAP_SYS_RESOURCE and may not pass fs.nr_open.
            wanted.Maximum = Math.Min(wanted.Maximum, NrOpen());
            wanted.Current = Math.Min(wanted.Current, wanted.Maximum);
        }

        if (Interop.SetRLimit(Interop.RLIMIT_NOFILE, &wanted) != 0)
        {
            // Without the capability, go as far as the hard limit allows.
            wanted = new Interop.RLimit { Current = limit.Maximum, Maximum = limit.Maximum };
            _ = Interop.SetRLimit(Interop.RLIMIT_NOFILE, &wanted);
        }

        _ = Interop.GetRLimit(Interop.RLIMIT_NOFILE, &limit);
        return limit.Current >= needed
            ? (limit.Current, null)
            : (limit.Current, $"open-file limit is {limit.Current}, below the {needed} that clients.max needs (2 per client); raise LimitNOFILE= or lower clients.max");
    }

    private static ulong NrOpen()
    {
        try
        {
            return ulong.Parse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            return 1_048_576;
        }
    }
}
