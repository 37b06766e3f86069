using System.Buffers.Binary;
using AppHb.Core.Wire;
using AppHb.Linux.Accounts;
using AppHb.Linux.Files;
using AppHb.Replication.Blocks;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Resync;

public enum ManifestEntryKind : byte
{
    File = 1,
    Directory = 2,
    Symlink = 3,
}

/// <summary>A file's or a directory's permission bits, owner and group, and a file's modification time, as a resync
/// and a verify compare them (a directory's time is the replica's own: every entry applied there sets it).</summary>
/// <param name="Modified">A regular file's modification time (nanoseconds since 1970, UTC); 0 for a directory.</param>
public readonly record struct EntryAttributes(uint Mode, uint Owner, uint Group, long Modified = 0)
{
    /// <summary>The path's attributes now (symlinks followed), or null when it is gone.</summary>
    public static EntryAttributes? Of(string fullPath)
    {
        try
        {
            return FileStatus.Of(fullPath) is { } status
                ? new EntryAttributes(status.Permissions, status.Owner, status.Group, status.IsRegularFile ? status.ModifiedNanoseconds : 0)
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public override string ToString() =>
        $"mode {Convert.ToString(Mode, 8).PadLeft(4, '0')} owner {Owner}:{Group}" + (Modified == 0 ? string.Empty : $" modified {Time(Modified)}");

    /// <summary>An instant to the nanosecond, as ISO 8601 in UTC.</summary>
    public static string Time(long nanoseconds)
    {
        var (seconds, rest) = FileTimes.Split(nanoseconds);
        return FormattableString.Invariant($"{DateTime.UnixEpoch.AddSeconds(seconds):yyyy-MM-ddTHH:mm:ss}.{rest:D9}Z");
    }
}

/// <summary>One thing a replica holds, as a difference resync compares it: a file by its block hashes, a directory,
/// a symlink by its target; a file and a directory with their <see cref="Attributes"/> (null: not known, never
/// compared).</summary>
public sealed record ManifestEntry(string Path, ManifestEntryKind Kind, BlockIndex? Blocks = null, string? Target = null, EntryAttributes? Attributes = null);

/// <summary>What a replica holds, for a difference resync (docs/replication-design.md, "Resync"): the standby walks
/// its replica and sends this; the active adopts it as what the peer has and journals only what differs, so a resync
/// after days apart reads both trees once and sends only the differing blocks, and one interrupted halfway starts
/// again from whatever the replica reached.</summary>
public static class TreeManifest
{
    /// <summary>About how large one manifest message grows before it is sent (a file's hashes are never split).</summary>
    public const int PartBytes = 1 << 20;

    /// <summary>Every entry under <paramref name="root"/> (not the root itself), parents before children; symlinks
    /// are not followed.</summary>
    /// <param name="excluded">Paths (relative) left out, with everything under them.</param>
    public static IEnumerable<ManifestEntry> Walk(string root, int blockSize, Func<string, bool>? excluded = null) =>
        WalkFrom(root, root, blockSize, excluded);

    /// <summary>Everything <paramref name="scope"/> replicates, the directories above its members passed through
    /// (never listed), nothing beside them walked.</summary>
    public static IEnumerable<ManifestEntry> Walk(ReplicatedScope scope, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(scope);
        return WalkFrom(scope.Root, scope.Root, blockSize, path => !scope.Replicates(path), scope.Leads);
    }

    /// <summary>What the tree holds at each of <paramref name="paths"/> (relative) and, for a directory, everything
    /// under it: a difference resync's manifest when only those paths may differ.</summary>
    public static IEnumerable<ManifestEntry> Walk(string root, int blockSize, IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        foreach (var path in paths)
        {
            if (Entry(root, path, blockSize) is not { } entry)
            {
                continue;
            }

            yield return entry;
            if (entry.Kind == ManifestEntryKind.Directory)
            {
                foreach (var under in WalkFrom(root, Path.Combine(root, path), blockSize, null))
                {
                    yield return under;
                }
            }
        }
    }

    private static IEnumerable<ManifestEntry> WalkFrom(string root, string start, int blockSize, Func<string, bool>? excluded, Func<string, bool>? pass = null)
    {
        foreach (var (path, entry) in FileTree.Walk(root, start, excluded, pass))
        {
            if (entry.LinkTarget is { } target)
            {
                yield return new ManifestEntry(path, ManifestEntryKind.Symlink, Target: target);
            }
            else if (entry is DirectoryInfo)
            {
                yield return new ManifestEntry(path, ManifestEntryKind.Directory, Attributes: EntryAttributes.Of(entry.FullName));
            }
            else if (Index(entry.FullName, blockSize) is { } blocks)
            {
                yield return new ManifestEntry(path, ManifestEntryKind.File, blocks, Attributes: EntryAttributes.Of(entry.FullName));
            }
        }
    }

    /// <summary>What <paramref name="relative"/> under <paramref name="root"/> holds now, or null when nothing is there.</summary>
    public static ManifestEntry? Entry(string root, string relative, int blockSize)
    {
        var full = Path.Combine(root, relative);
        FileSystemInfo info = new FileInfo(full);
        if (!info.Exists)
        {
            info = new DirectoryInfo(full);
            if (!info.Exists)
            {
                return null;
            }
        }

        return info.LinkTarget is { } target ? new ManifestEntry(relative, ManifestEntryKind.Symlink, Target: target)
            : info is DirectoryInfo ? new ManifestEntry(relative, ManifestEntryKind.Directory, Attributes: EntryAttributes.Of(full))
            : Index(full, blockSize) is { } blocks ? new ManifestEntry(relative, ManifestEntryKind.File, blocks, Attributes: EntryAttributes.Of(full))
            : null;
    }

    private static BlockIndex? Index(string path, int blockSize)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
            return BlockIndex.Of(stream, blockSize, static (_, _, _) => { });
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Gone meanwhile: nothing writes the replica but the applier, which is not running during the walk.
            return null;
        }
    }

    /// <summary>The entries as ManifestPart messages of about <see cref="PartBytes"/> each.</summary>
    public static IEnumerable<byte[]> Encode(IEnumerable<ManifestEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var body = new List<byte> { (byte)ReplicationMessageKind.ManifestPart };
        var hash = new byte[16];
        foreach (var entry in entries)
        {
            body.Add((byte)entry.Kind);
            BigEndianWriter.AddString(body, entry.Path, JournalPath.MaxBytes, "a manifest path");
            if (entry.Kind is ManifestEntryKind.File or ManifestEntryKind.Directory)
            {
                // Unknown (gone between the walk's listing and its stat) travels as NoOwner, never compared.
                var attributes = entry.Attributes ?? new EntryAttributes(JournalRecord.NoOwner, JournalRecord.NoOwner, JournalRecord.NoOwner);
                BigEndianWriter.AddUInt32(body, attributes.Mode);
                BigEndianWriter.AddUInt32(body, attributes.Owner);
                BigEndianWriter.AddUInt32(body, attributes.Group);
                BigEndianWriter.AddUInt64(body, unchecked((ulong)attributes.Modified));
            }

            switch (entry.Kind)
            {
                case ManifestEntryKind.File:
                    var blocks = entry.Blocks!;
                    BigEndianWriter.AddUInt64(body, (ulong)blocks.Length);
                    foreach (var h in blocks.Hashes)
                    {
                        BinaryPrimitives.WriteUInt128BigEndian(hash, h);
                        body.AddRange(hash);
                    }

                    break;
                case ManifestEntryKind.Symlink:
                    BigEndianWriter.AddString(body, entry.Target!, JournalPath.MaxBytes, "a symlink's target");
                    break;
            }

            if (body.Count >= PartBytes)
            {
                yield return [.. body];
                body = [(byte)ReplicationMessageKind.ManifestPart];
            }
        }

        if (body.Count > 1)
        {
            yield return [.. body];
        }
    }

    /// <summary>The entries of one ManifestPart message; a file's hash count follows from its length.</summary>
    /// <exception cref="ReplicationRefusedException">The part does not decode, or names a path that could leave the
    /// replicated root (the reason says which).</exception>
    public static IReadOnlyList<ManifestEntry> Decode(ReadOnlySpan<byte> payload, int blockSize)
    {
        if (payload.Length < 1 || payload[0] != (byte)ReplicationMessageKind.ManifestPart)
        {
            throw new ReplicationRefusedException("a message that is not a manifest part where one was due");
        }

        var reader = new BigEndianReader(payload[1..]);
        var entries = new List<ManifestEntry>();
        while (!reader.AtEnd)
        {
            if (!reader.Read8(out var kind) || !reader.ReadText(JournalPath.MaxBytes, out var path))
            {
                throw Malformed(entries.Count, "it ends inside an entry's kind or path");
            }

            if (JournalPath.Problem(path) is { } problem)
            {
                throw Malformed(entries.Count, problem);
            }

            EntryAttributes? attributes = null;
            if ((ManifestEntryKind)kind is ManifestEntryKind.File or ManifestEntryKind.Directory)
            {
                if (!reader.Read32(out var mode) || !reader.Read32(out var owner) || !reader.Read32(out var group) || !reader.Read64(out var modified))
                {
                    throw Malformed(entries.Count, $"{path}: it ends inside its mode, owner, group and modification time");
                }

                attributes = mode == JournalRecord.NoOwner ? null : new EntryAttributes(mode, owner, group, unchecked((long)modified));
            }

            switch ((ManifestEntryKind)kind)
            {
                case ManifestEntryKind.File:
                    if (!reader.Read64(out var length) || length > long.MaxValue - (ulong)blockSize)
                    {
                        throw Malformed(entries.Count, $"{path}: its length is missing or impossible");
                    }

                    var count = (length + (ulong)blockSize - 1) / (ulong)blockSize;
                    if (count > (ulong)reader.Left / 16)
                    {
                        throw Malformed(entries.Count, $"{path}: {length} bytes need {count} block hashes and the part ends first");
                    }

                    var hashes = new UInt128[count];
                    for (var i = 0; i < hashes.Length; i++)
                    {
                        reader.ReadBytes(16, out var bytes);
                        hashes[i] = BinaryPrimitives.ReadUInt128BigEndian(bytes);
                    }

                    entries.Add(new ManifestEntry(path, ManifestEntryKind.File, BlockIndex.FromHashes((long)length, blockSize, hashes), Attributes: attributes));
                    break;
                case ManifestEntryKind.Directory:
                    entries.Add(new ManifestEntry(path, ManifestEntryKind.Directory, Attributes: attributes));
                    break;
                case ManifestEntryKind.Symlink:
                    if (!reader.ReadText(JournalPath.MaxBytes, out var target))
                    {
                        throw Malformed(entries.Count, $"{path}: its symlink target is missing");
                    }

                    entries.Add(new ManifestEntry(path, ManifestEntryKind.Symlink, Target: target));
                    break;
                default:
                    throw Malformed(entries.Count, $"{path}: entry kind {kind} is unknown");
            }
        }

        return entries;
    }

    private static ReplicationRefusedException Malformed(int index, string problem) =>
        new($"the peer's manifest is malformed at entry {index + 1} of a part: {problem}");
}
