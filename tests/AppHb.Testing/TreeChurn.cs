namespace AppHb.Testing;

/// <summary>lsyncd's churn test's changes: random creates, appends, overwrites, renames, deletions, directory trees
/// made, moved into each other and removed, and symlinks, in a tree a replication test then compares.</summary>
public static class TreeChurn
{
    /// <summary>One random change, as an application would make it.</summary>
    public static void Change(string root, Random random)
    {
        // Regular files only: a symlink may dangle once its target moved.
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => new FileInfo(f).LinkTarget is null).ToList();
        var directories = Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).ToList();
        string AnyDirectory() => directories.Count == 0 || random.Next(4) == 0 ? root : directories[random.Next(directories.Count)];
        string NewName() => $"n{random.Next(1_000_000)}";
        byte[] Bytes(int max)
        {
            var bytes = new byte[random.Next(max)];
            random.NextBytes(bytes);
            return bytes;
        }

        switch (random.Next(10))
        {
            case 0 or 1:
                File.WriteAllBytes(Path.Combine(AnyDirectory(), NewName()), Bytes(40_000));
                break;
            case 2 when files.Count > 0:
                using (var append = new FileStream(files[random.Next(files.Count)], FileMode.Append))
                {
                    append.Write(Bytes(10_000));
                }

                break;
            case 3 when files.Count > 0:
                using (var overwrite = new FileStream(files[random.Next(files.Count)], FileMode.Open))
                {
                    overwrite.Position = random.Next((int)Math.Max(1, overwrite.Length));
                    overwrite.Write(Bytes(6_000));
                }

                break;
            case 4 when files.Count > 0:
                File.Move(files[random.Next(files.Count)], Path.Combine(AnyDirectory(), NewName()), overwrite: true);
                break;
            case 5 when files.Count > 0:
                File.Delete(files[random.Next(files.Count)]);
                break;
            case 6:
                var tree = Path.Combine(AnyDirectory(), NewName());
                for (var depth = random.Next(1, 4); depth > 0; depth--)
                {
                    tree = Path.Combine(tree, NewName());
                }

                Directory.CreateDirectory(tree);
                File.WriteAllBytes(Path.Combine(tree, NewName()), Bytes(20_000));
                break;
            case 7 when directories.Count > 0:
                var moved = directories[random.Next(directories.Count)];
                var into = AnyDirectory();
                if (!(into + "/").StartsWith(moved + "/", StringComparison.Ordinal))
                {
                    Directory.Move(moved, Path.Combine(into, NewName()));
                }

                break;
            case 8 when directories.Count > 3:
                Directory.Delete(directories[random.Next(directories.Count)], recursive: true);
                break;
            case 9 when files.Count > 0:
                File.CreateSymbolicLink(Path.Combine(AnyDirectory(), NewName()), Path.GetRelativePath(root, files[random.Next(files.Count)]));
                break;
        }
    }
}
