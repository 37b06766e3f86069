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
    public static string? KeepAsideIfMarked(string replicaRoot, string stateDirectory, DateTimeOffset now)
    {
        var marker = Path.Combine(stateDirectory, MarkerName);
        if (!File.Exists(marker))
        {
            return null;
        }

        var root = Path.GetFullPath(replicaRoot).TrimEnd('/');
        var stem = $"{root}.apphb-diverged-{now.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
        var kept = stem;
        for (var n = 2; Path.Exists(kept); n++)
        {
            kept = $"{stem}-{n}";
        }

        HardLinkedCopy.Make(root, kept);
        File.Delete(marker);
        DurableFile.SyncDirectory(stateDirectory);
        return kept;
    }
}
