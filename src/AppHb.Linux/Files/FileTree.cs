namespace AppHb.Linux.Files;

/// <summary>Walks a directory tree as the replication code reads it: every entry below a directory, a directory
/// before what it holds, symlinks reported and never followed, a directory that vanished meanwhile skipped.</summary>
public static class FileTree
{
    /// <summary>The entries below <paramref name="start"/> (inside <paramref name="root"/>, or the root itself), each
    /// with its path relative to <paramref name="root"/> ('/'-separated). A path <paramref name="skip"/> says yes to
    /// is neither reported nor entered, unless <paramref name="pass"/> says yes to it: a directory that is then
    /// entered without being reported (one that leads to what is walked).</summary>
    public static IEnumerable<(string Relative, FileSystemInfo Entry)> Walk(string root, string start, Func<string, bool>? skip = null, Func<string, bool>? pass = null)
    {
        var full = Path.GetFullPath(root);
        var pending = new Stack<string>();
        pending.Push(Path.GetFullPath(start));
        while (pending.Count > 0)
        {
            List<FileSystemInfo> entries;
            try
            {
                entries = [.. new DirectoryInfo(pending.Pop()).EnumerateFileSystemInfos()];
            }
            catch (DirectoryNotFoundException)
            {
                continue;
            }

            foreach (var entry in entries)
            {
                var relative = Path.GetRelativePath(full, entry.FullName);
                if (pass?.Invoke(relative) == true)
                {
                    if (entry is DirectoryInfo && entry.LinkTarget is null)
                    {
                        pending.Push(entry.FullName);
                    }

                    continue;
                }

                if (skip?.Invoke(relative) == true)
                {
                    continue;
                }

                yield return (relative, entry);
                if (entry is DirectoryInfo && entry.LinkTarget is null)
                {
                    pending.Push(entry.FullName);
                }
            }
        }
    }
}
