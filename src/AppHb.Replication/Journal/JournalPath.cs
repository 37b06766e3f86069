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
}
