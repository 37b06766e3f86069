namespace AppHb.Replication.Resync;

public enum TreeDifferenceKind
{
    /// <summary>The active node has it; the replica does not.</summary>
    MissingOnReplica,
    /// <summary>The replica has it; the active node does not.</summary>
    OnlyOnReplica,
    /// <summary>A file on both, with other content (the block numbers that differ, or another length).</summary>
    ContentDiffers,
    /// <summary>Both have the path, as different kinds of thing (a file and a directory, ...).</summary>
    KindDiffers,
    /// <summary>A symlink on both, pointing elsewhere.</summary>
    TargetDiffers,
    /// <summary>A file (same content) or a directory on both, with another mode, owner or group.</summary>
    AttributesDiffer,
}

/// <summary>One path where two trees differ, and how (<see cref="Detail"/> says it for a person).</summary>
public sealed record TreeDifference(string Path, TreeDifferenceKind Kind, string Detail);

/// <summary>Compares what the active node's tree holds with what the replica holds, both as manifests hashed in the
/// same block size (`apphbctl replication verify`).</summary>
public static class TreeComparison
{
    /// <summary>Every path where <paramref name="replica"/> differs from <paramref name="source"/>, in path order.</summary>
    public static IReadOnlyList<TreeDifference> Compare(IEnumerable<ManifestEntry> source, IEnumerable<ManifestEntry> replica)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(replica);
        var theirs = new Dictionary<string, ManifestEntry>(StringComparer.Ordinal);
        foreach (var entry in replica)
        {
            theirs[entry.Path] = entry;
        }

        var differences = new List<TreeDifference>();
        foreach (var ours in source)
        {
            if (!theirs.Remove(ours.Path, out var copy))
            {
                differences.Add(new TreeDifference(ours.Path, TreeDifferenceKind.MissingOnReplica, $"{Name(ours.Kind)} missing on the replica"));
            }
            else if (Differs(ours, copy) is { } difference)
            {
                differences.Add(difference);
            }
        }

        differences.AddRange(theirs.Values.Select(e => new TreeDifference(e.Path, TreeDifferenceKind.OnlyOnReplica, $"{Name(e.Kind)} only on the replica")));
        differences.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return differences;
    }

    /// <summary>How <paramref name="copy"/> differs from <paramref name="original"/> at the same path, or null when
    /// it does not.</summary>
    public static TreeDifference? Differs(ManifestEntry original, ManifestEntry copy)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(copy);
        if (original.Kind != copy.Kind)
        {
            return new TreeDifference(original.Path, TreeDifferenceKind.KindDiffers, $"a {Name(original.Kind)} on the active node, a {Name(copy.Kind)} on the replica");
        }

        switch (original.Kind)
        {
            case ManifestEntryKind.Symlink when original.Target != copy.Target:
                return new TreeDifference(original.Path, TreeDifferenceKind.TargetDiffers, $"a symlink to '{original.Target}' on the active node, to '{copy.Target}' on the replica");
            case ManifestEntryKind.File:
                var blocks = original.Blocks!;
                var changed = blocks.ChangedFrom(copy.Blocks!);
                if (blocks.Length != copy.Blocks!.Length)
                {
                    return new TreeDifference(original.Path, TreeDifferenceKind.ContentDiffers, $"{blocks.Length} bytes on the active node, {copy.Blocks.Length} on the replica");
                }

                if (changed.Count > 0)
                {
                    var shown = string.Join(", ", changed.Take(8));
                    return new TreeDifference(original.Path, TreeDifferenceKind.ContentDiffers,
                        $"{changed.Count} of {blocks.Hashes.Count} blocks of {blocks.BlockSize} bytes differ ({shown}{(changed.Count > 8 ? ", ..." : string.Empty)})");
                }

                return AttributesDiffer(original, copy);
            case ManifestEntryKind.Directory:
                return AttributesDiffer(original, copy);
            default:
                return null;
        }
    }

    /// <summary>Mode, owner or group, when both sides know theirs. (A file's content is compared first: a difference
    /// in both is reported as content, and the resync that repairs it sends the attributes too.)</summary>
    private static TreeDifference? AttributesDiffer(ManifestEntry original, ManifestEntry copy) =>
        original.Attributes is { } ours && copy.Attributes is { } theirs && ours != theirs
            ? new TreeDifference(original.Path, TreeDifferenceKind.AttributesDiffer, $"{ours} on the active node, {theirs} on the replica")
            : null;

    private static string Name(ManifestEntryKind kind) => kind switch
    {
        ManifestEntryKind.Directory => "directory",
        ManifestEntryKind.Symlink => "symlink",
        _ => "file",
    };
}
