using AppHb.Core.Cluster;

namespace AppHb.Replication.Journal;

/// <summary>What a journal record says happened (docs/replication-design.md, "Journal record format").</summary>
public enum JournalRecordKind : byte
{
    /// <summary>A file's content changed: its new length and the blocks that differ from the peer's copy.</summary>
    Write = 1,
    /// <summary>A regular file was created (empty, with its mode).</summary>
    Create = 2,
    /// <summary>A file, symlink or empty directory was removed.</summary>
    Delete = 3,
    /// <summary>A path was renamed (replacing what was at the new path, as rename(2) does).</summary>
    Rename = 4,
    /// <summary>Mode, owner, group or modification time changed.</summary>
    Attributes = 5,
    /// <summary>A symbolic link was created.</summary>
    Symlink = 6,
    /// <summary>A directory was created.</summary>
    Directory = 7,
    /// <summary>A consistency point: every record before it is applied to the replica together (no path).</summary>
    Cut = 8,
}

/// <summary>One change in the ordered journal. <paramref name="Path"/> is relative to the replicated root (see
/// <see cref="JournalPath"/>); the sequence number orders every record of a generation.</summary>
public abstract record JournalRecord(ulong Sequence, DataGeneration Generation, string Path)
{
    /// <summary>An owner or group not given (chown's -1: left as it is made).</summary>
    public const uint NoOwner = uint.MaxValue;

    public abstract JournalRecordKind Kind { get; }
}

/// <summary>One block of a file's new content: block <paramref name="Index"/> (offset Index × block size), at most a
/// block long (the last block of a file may be shorter). The content may be a slice of a buffer its maker reuses (the
/// journaler's record buffer, the standby's received message): such a record is used before that buffer is.</summary>
public readonly record struct BlockChange(uint Index, ReadOnlyMemory<byte> Content);

/// <param name="Length">The file's length after the change (it may have shrunk: the replica is truncated to it).</param>
/// <param name="Blocks">The blocks that differ from the peer's copy, in increasing index order.</param>
/// <param name="Modified">The file's modification time after the change (nanoseconds since 1970, UTC), which the
/// replica's version takes; null: not given (the first parts of a change too large for one record, which the last
/// part's time covers; a journal from before 2026-12-02).</param>
public sealed record WriteRecord(ulong Sequence, DataGeneration Generation, string Path, ulong Length, int BlockSize, IReadOnlyList<BlockChange> Blocks, long? Modified = null)
    : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Write;

    /// <summary>Bytes of file content the record's blocks carry.</summary>
    public long ContentBytes
    {
        get
        {
            long bytes = 0;
            foreach (var block in Blocks)
            {
                bytes += block.Content.Length;
            }

            return bytes;
        }
    }
}

/// <param name="Owner">The file's owner and <paramref name="Group"/> its group on the active node, so that a service
/// running as its own user owns its files on the standby too; <see cref="JournalRecord.NoOwner"/>: as the applier
/// makes it.</param>
/// <param name="Modified">As for <see cref="WriteRecord"/>: an empty file keeps the active's time too.</param>
public sealed record CreateRecord(ulong Sequence, DataGeneration Generation, string Path, uint Mode, uint Owner = JournalRecord.NoOwner, uint Group = JournalRecord.NoOwner, long? Modified = null)
    : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Create;
}

public sealed record DeleteRecord(ulong Sequence, DataGeneration Generation, string Path) : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Delete;
}

public sealed record RenameRecord(ulong Sequence, DataGeneration Generation, string Path, string NewPath) : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Rename;
}

/// <param name="ModifiedNanoseconds">The modification time, nanoseconds since 1970 (UTC).</param>
public sealed record AttributesRecord(ulong Sequence, DataGeneration Generation, string Path, uint Mode, uint Owner, uint Group, long ModifiedNanoseconds)
    : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Attributes;
}

public sealed record SymlinkRecord(ulong Sequence, DataGeneration Generation, string Path, string Target) : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Symlink;
}

/// <param name="Owner">As for <see cref="CreateRecord"/>.</param>
public sealed record DirectoryRecord(ulong Sequence, DataGeneration Generation, string Path, uint Mode, uint Owner = JournalRecord.NoOwner, uint Group = JournalRecord.NoOwner)
    : JournalRecord(Sequence, Generation, Path)
{
    public override JournalRecordKind Kind => JournalRecordKind.Directory;
}

public sealed record CutRecord(ulong Sequence, DataGeneration Generation) : JournalRecord(Sequence, Generation, string.Empty)
{
    public override JournalRecordKind Kind => JournalRecordKind.Cut;
}
