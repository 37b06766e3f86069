namespace AppHb.Linux.Files;

/// <summary>A copy of a tree that costs no data: directories made anew, files hard-linked, symlinks copied. It keeps
/// every file's content as it is now for as long as nothing writes the originals in place (a replica's applier
/// never does: it renames new versions over them), on the same filesystem only.</summary>
public static class HardLinkedCopy
{
    /// <summary>Copies <paramref name="source"/> (a directory, or a single file) to <paramref name="destination"/> (which must not exist), then
    /// makes the copy durable (every directory fsync'd). Returns how many files it linked.</summary>
    /// <exception cref="IOException">A link or a directory was refused (another filesystem, the destination exists);
    /// the message names the path.</exception>
    public static int Make(string source, string destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        if (Path.Exists(destination))
        {
            throw new IOException($"{destination} exists already: a copy never mixes into another");
        }

        var files = 0;
        var top = Path.GetFullPath(destination);
        if (File.Exists(source) && new FileInfo(source).LinkTarget is null)
        {
            // A single file: its copy is a link to it.
            Link(Path.GetFullPath(source), top);
            DurableFile.SyncDirectory(Path.GetDirectoryName(top)!);
            return 1;
        }

        Directory.CreateDirectory(top);
        List<string> directories = [top];
        // A directory comes before what it holds, so its copy is there for its entries.
        foreach (var (relative, entry) in FileTree.Walk(source, source))
        {
            var target = Path.Combine(top, relative);
            if (entry.LinkTarget is { } link)
            {
                File.CreateSymbolicLink(target, link);
            }
            else if (entry is DirectoryInfo)
            {
                Directory.CreateDirectory(target);
                directories.Add(target);
            }
            else
            {
                Link(entry.FullName, target);
                files++;
            }
        }

        foreach (var directory in directories)
        {
            DurableFile.SyncDirectory(directory);
        }

        DurableFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(destination))!);
        return files;
    }

    private static void Link(string existing, string link)
    {
        if (Interop.Link(existing, link) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new IOException($"cannot link {existing} as {link}: {Interop.Describe(errno)} (errno {errno})");
        }
    }
}
