using System.Security.Cryptography;

namespace AppHb.Testing;

/// <summary>Two directory trees compared as replication must leave them: every path with its kind, a file with its
/// length, content hash and modification time, a symlink with its target.</summary>
public static class TreeSnapshot
{
    /// <summary>Every path under <paramref name="root"/> but those <paramref name="skip"/> says yes to (and what is
    /// under them), with what it is.</summary>
    public static Dictionary<string, string> Take(string root, Func<string, bool>? skip = null)
    {
        var snapshot = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var path = Path.GetRelativePath(root, entry.FullName);
            if (skip?.Invoke(path) == true || (skip is not null && AncestorSkipped(path, skip)))
            {
                continue;
            }

            snapshot[path] = entry.LinkTarget is { } target ? $"symlink to {target}"
                : entry is DirectoryInfo ? "directory"
                : $"file of {((FileInfo)entry).Length} bytes, {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(entry.FullName)))}, modified {entry.LastWriteTimeUtc:O}";
        }

        return snapshot;
    }

    /// <summary>How many paths <paramref name="source"/> holds, and what differs in <paramref name="replica"/> (the
    /// first 20 paths, each with both sides), or null when nothing does.</summary>
    public static (int Paths, string? Differences) Compare(string source, string replica, Func<string, bool>? skip = null)
    {
        var want = Take(source, skip);
        var have = Take(replica, skip);
        var differences = want.Keys.Union(have.Keys).Where(p => want.GetValueOrDefault(p) != have.GetValueOrDefault(p)).Order(StringComparer.Ordinal).ToList();
        return (want.Count, differences.Count == 0 ? null
            : $"{differences.Count} of {want.Count} paths differ:\n" + string.Join("\n", differences.Take(20).Select(p => $"{p}: source {want.GetValueOrDefault(p) ?? "(none)"}, replica {have.GetValueOrDefault(p) ?? "(none)"}")));
    }

    private static bool AncestorSkipped(string path, Func<string, bool> skip)
    {
        for (var slash = path.LastIndexOf('/'); slash > 0; slash = path.LastIndexOf('/', slash - 1))
        {
            if (skip(path[..slash]))
            {
                return true;
            }
        }

        return false;
    }
}
