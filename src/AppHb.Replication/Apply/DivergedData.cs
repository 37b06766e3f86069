using System.Globalization;
using AppHb.Linux.Files;

namespace AppHb.Replication.Apply;

/// <summary>A replica whose data diverged from the active node's (a split brain resolved against this node) is kept
/// aside before a resync replaces it: a marker in the replica's state directory, written durably when the split
/// brain is resolved (so an apphbd restart in between loses nothing), then, at the next resync, a hard-linked copy
/// of the whole replica beside it, <c>PATH.apphb-diverged-YYYYMMDD-HHMMSS</c>: nothing is deleted, and it costs no
/// data (the applier never writes a file in place).</summary>
public static class DivergedData
{
    private const string MarkerName = "diverged";

    /// <summary>Records that the replica's data diverged and must be kept before it is resynced.</summary>
    public static void Mark(string stateDirectory, string why)
    {
        Directory.CreateDirectory(stateDirectory);
        DurableFile.Replace(Path.Combine(stateDirectory, MarkerName), System.Text.Encoding.UTF8.GetBytes(why + "\n"));
    }

    public static bool IsMarked(string stateDirectory) => File.Exists(Path.Combine(stateDirectory, MarkerName));

    /// <summary>When marked: copies the replica aside, then clears the mark. Returns where it was kept, or null when
    /// there was no mark.</summary>
    /// <exception cref="IOException">The copy was refused (the mark stays: the resync must not go on).</exception>
    public static string? KeepAsideIfMarked(string replicaRoot, string stateDirectory, DateTimeOffset now) =>
        KeepAsideIfMarked(Journal.ReplicatedScope.Whole(replicaRoot), stateDirectory, now);

    /// <summary>When marked: copies every member of <paramref name="scope"/> (or its whole root) aside, each beside
    /// itself, then clears the mark. Returns where they were kept (comma-separated), or null when there was no mark.</summary>
    /// <exception cref="IOException">A copy was refused (the mark stays: the resync must not go on).</exception>
    public static string? KeepAsideIfMarked(Journal.ReplicatedScope scope, string stateDirectory, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var marker = Path.Combine(stateDirectory, MarkerName);
        if (!File.Exists(marker))
        {
            return null;
        }

        var kept = new List<string>();
        foreach (var source in scope.IsWhole ? [scope.Root] : scope.Members.Select(scope.Full))
        {
            if (!scope.IsWhole && !Path.Exists(source))
            {
                // A member not made yet: nothing of it to keep.
                continue;
            }

            var stem = $"{source.TrimEnd('/')}.apphb-diverged-{now.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
            var copy = stem;
            for (var n = 2; Path.Exists(copy); n++)
            {
                copy = $"{stem}-{n}";
            }

            HardLinkedCopy.Make(source, copy);
            kept.Add(copy);
        }

        File.Delete(marker);
        DurableFile.SyncDirectory(stateDirectory);
        return string.Join(", ", kept);
    }
}
