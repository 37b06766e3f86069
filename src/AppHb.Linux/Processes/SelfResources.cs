using System.Globalization;

namespace AppHb.Linux.Processes;

/// <summary>The daemon's own resident set, read the way <c>ps</c> reads it. System.Diagnostics.Process would do too,
/// but loading it costs more resident memory than the figure it reports is worth (docs/benchmarks.md).</summary>
public static class SelfResources
{
    /// <summary>Resident bytes from <c>/proc/self/statm</c> (its second field, in pages: proc(5)).</summary>
    public static long ResidentBytes()
    {
        Span<byte> buffer = stackalloc byte[128];
        using var statm = File.OpenHandle("/proc/self/statm");
        var read = RandomAccess.Read(statm, buffer, 0);
        var text = buffer[..read];
        var first = text.IndexOf((byte)' ');
        var fields = text[(first + 1)..];
        var second = fields.IndexOf((byte)' ');
        var pages = long.Parse(second < 0 ? fields : fields[..second], NumberStyles.None, CultureInfo.InvariantCulture);
        return pages * Environment.SystemPageSize;
    }

    /// <summary>Descriptors open now (the directory read to count them left out) and RLIMIT_NOFILE's soft limit;
    /// null when no descriptor is free to read <c>/proc/self/fd</c> with.</summary>
    public static unsafe (int Open, ulong Limit)? OpenDescriptors()
    {
        Interop.RLimit limit;
        if (Interop.GetRLimit(Interop.RLIMIT_NOFILE, &limit) != 0)
        {
            return null;
        }

        try
        {
            return (Directory.EnumerateFileSystemEntries("/proc/self/fd").Count() - 1, limit.Current);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
