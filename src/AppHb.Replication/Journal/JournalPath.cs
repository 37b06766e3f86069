using System.Text;

namespace AppHb.Replication.Journal;

/// <summary>The paths a journal record may carry: relative to the replicated root and unable to leave it, so that a
/// record (from a peer, or a damaged journal) can never make the applier write elsewhere.</summary>
public static class JournalPath
{
    /// <summary>PATH_MAX: a longer path cannot be opened anyway.</summary>
    public const int MaxBytes = 4096;

    /// <summary>Why <paramref name="path"/> is not a journal path, or null when it is one.</summary>
    public static string? Problem(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0)
        {
            return "the path is empty";
        }

        if (path[0] == '/')
        {
            return $"\"{path}\" is absolute: journal paths are relative to the replicated root";
        }

        if (path.Contains('\0', StringComparison.Ordinal))
        {
            return "the path contains a NUL byte";
        }

        if (Encoding.UTF8.GetByteCount(path) > MaxBytes)
        {
            return $"the path is longer than {MaxBytes} bytes";
        }

        foreach (var part in path.Split('/'))
        {
            if (part.Length == 0 || part == "." || part == "..")
            {
                return $"\"{path}\" has an empty, \".\" or \"..\" component: it could name something outside the replicated root";
            }
        }

        return null;
    }

    /// <summary>Whether <paramref name="path"/> is <paramref name="directory"/> or under it.</summary>
    public static bool IsAtOrUnder(string path, string directory) =>
        path == directory || path.StartsWith(directory + "/", StringComparison.Ordinal);

    /// <summary>The directory holding <paramref name="path"/> ("" for one at the top).</summary>
    internal static string Parent(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash < 0 ? string.Empty : path[..slash];
    }

    /// <summary>Whether <paramref name="path"/> or a directory above it (not the top, "") is one of
    /// <paramref name="paths"/>.</summary>
    internal static bool IsAtOrUnderAny(string path, IReadOnlySet<string> paths)
    {
        for (var p = path; p.Length > 0; p = Parent(p))
        {
            if (paths.Contains(p))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>What a rename does to entries kept by path: those at or under <paramref name="from"/> are under
    /// <paramref name="to"/> now.</summary>
    internal static void MoveUnder<T>(Dictionary<string, T> entries, string from, string to)
    {
        foreach (var (path, value) in entries.Where(e => IsAtOrUnder(e.Key, from)).ToList())
        {
            entries.Remove(path);
            entries[to + path[from.Length..]] = value;
        }
    }

    /// <summary>Removes the entries at or under <paramref name="path"/>.</summary>
    internal static void RemoveUnder<T>(Dictionary<string, T> entries, string path)
    {
        foreach (var under in entries.Keys.Where(p => IsAtOrUnder(p, path)).ToList())
        {
            entries.Remove(under);
        }
    }
}
