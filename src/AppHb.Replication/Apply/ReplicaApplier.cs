using AppHb.Linux.Accounts;
using AppHb.Linux.Files;
using AppHb.Replication.Journal;

namespace AppHb.Replication.Apply;

/// <summary>Applies journal records to the replica under <see cref="Root"/> on the standby, each one durably and each
/// file version atomically: a changed file is rebuilt beside itself (its old content, the record's blocks, its new
/// length), fsync'd, renamed over the old one, and its directory fsync'd; so after a crash at any moment every file
/// is one of its real versions, whole. Records must come in sequence order (the caller's journal guarantees it).
/// Cuts (several records made visible together) come with the transfer; this is the per-record step under them.</summary>
public sealed class ReplicaApplier(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>Applies one record.</summary>
    /// <exception cref="IOException">The replica refused the change (the message names the path); the engine resyncs
    /// that file.</exception>
    public void Apply(JournalRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record is CutRecord)
        {
            return;
        }

        var path = Resolve(record.Path);
        switch (record)
        {
            case WriteRecord write:
                var (mode, owner, group) = Ownership(path, write);
                DurableFile.Replace(path, file =>
                {
                    if (File.Exists(path))
                    {
                        using var old = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                        old.CopyTo(file);
                    }

                    Patch(file, write);
                    Own(file, mode, owner, group);
                    Time(file, write);
                }, mode);
                break;
            case CreateRecord create:
                DurableFile.Replace(path, file =>
                {
                    Own(file, (UnixFileMode)(create.Mode & 0xfff), create.Owner, create.Group);
                    Time(file, create);
                }, (UnixFileMode)(create.Mode & 0xfff));
                break;
            case DeleteRecord:
                if (Directory.Exists(path) && !File.GetAttributes(path).HasFlag(FileAttributes.ReparsePoint))
                {
                    Directory.Delete(path);
                }
                else
                {
                    File.Delete(path);
                }

                DurableFile.SyncDirectory(Path.GetDirectoryName(path)!);
                break;
            case RenameRecord rename:
                var target = Resolve(rename.NewPath);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                if (Directory.Exists(path) && !File.GetAttributes(path).HasFlag(FileAttributes.ReparsePoint))
                {
                    // rename(2) replaces an empty directory; Directory.Move refuses any existing target.
                    if (Directory.Exists(target))
                    {
                        Directory.Delete(target);
                    }

                    Directory.Move(path, target);
                }
                else
                {
                    File.Move(path, target, overwrite: true);
                }

                DurableFile.SyncDirectory(Path.GetDirectoryName(target)!);
                if (Path.GetDirectoryName(target) != Path.GetDirectoryName(path))
                {
                    DurableFile.SyncDirectory(Path.GetDirectoryName(path)!);
                }

                break;
            case DirectoryRecord directory:
                Directory.CreateDirectory(path);
                // Exactly the active's mode: creating it with the mode would let the umask narrow it.
                File.SetUnixFileMode(path, (UnixFileMode)(directory.Mode & 0xfff));
                ChangeOwner(path, directory.Owner, directory.Group);
                DurableFile.SyncDirectory(Path.GetDirectoryName(path)!);
                break;
            case SymlinkRecord symlink:
                // A symlink is replaced like a file: made beside, renamed over.
                var temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Environment.ProcessId}.link");
                File.Delete(temporary);
                File.CreateSymbolicLink(temporary, symlink.Target);
                File.Move(temporary, path, overwrite: true);
                DurableFile.SyncDirectory(Path.GetDirectoryName(path)!);
                break;
            case AttributesRecord attributes:
                SetAttributes(path, attributes);
                break;
        }
    }

    /// <summary>Gives <paramref name="file"/> (the replica's, or a version staged for it) an attributes record's
    /// mode, owner, group and modification time.</summary>
    internal static void SetAttributes(string file, AttributesRecord attributes)
    {
        File.SetUnixFileMode(file, (UnixFileMode)(attributes.Mode & 0xfff));
        ChangeOwner(file, attributes.Owner, attributes.Group);
        FileTimes.SetModified(file, attributes.ModifiedNanoseconds);
    }

    /// <summary>The record's path under the root; never outside it (the codec refuses such paths, and this checks
    /// again for records made in memory).</summary>
    private string Resolve(string relative)
    {
        if (JournalPath.Problem(relative) is { } problem)
        {
            throw new IOException($"replica {Root}: {problem}");
        }

        var full = Path.GetFullPath(Path.Combine(Root, relative));
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        return full;
    }

    /// <summary>The mode, owner and group a new version of <paramref name="basis"/> gets: the create record's, or
    /// the basis's own (a write replaces the file with a new one, which would otherwise be the applier's and take
    /// the umask off its mode).</summary>
    private static (UnixFileMode Mode, uint Owner, uint Group) Ownership(string? basis, JournalRecord record)
    {
        if (record is CreateRecord create)
        {
            return ((UnixFileMode)(create.Mode & 0xfff), create.Owner, create.Group);
        }

        if (basis is not null && File.Exists(basis))
        {
            var (uid, gid, mode) = UnixAccounts.OwnerOf(basis);
            return (mode, uid, gid);
        }

        return (UnixFileMode.UserRead | UnixFileMode.UserWrite, JournalRecord.NoOwner, JournalRecord.NoOwner);
    }

    /// <summary>Gives a new version its mode exactly (not narrowed by the umask) and its owner.</summary>
    private static void Own(FileStream file, UnixFileMode mode, uint owner, uint group)
    {
        File.SetUnixFileMode(file.SafeFileHandle, mode);
        ChangeOwner(file.Name, owner, group);
    }

    /// <summary>chown, when an owner is given and this process may give files away (root); a non-root apphbd's
    /// replica is its own.</summary>
    private static void ChangeOwner(string path, uint owner, uint group)
    {
        if ((owner != JournalRecord.NoOwner || group != JournalRecord.NoOwner) && UnixAccounts.EffectiveUserId == 0)
        {
            UnixAccounts.ChangeOwner(path, owner, group);
        }
    }

    /// <summary>Builds the version a write or create record makes of <paramref name="basis"/> (a file that may not
    /// exist; null: nothing) as the file <paramref name="file"/>: what a cut stages before it installs anything.</summary>
    /// <param name="sync">fsync it; false when the caller makes a whole batch durable at once (syncfs).</param>
    /// <param name="attributes">The mode, owner and group the version takes instead of the basis's: an attributes
    /// record earlier in the cut, not carried out on the basis yet (a write's only; a create has its own).</param>
    internal static void Build(string file, string? basis, JournalRecord record, bool sync = true, (UnixFileMode Mode, uint Owner, uint Group)? attributes = null)
    {
        var (mode, owner, group) = record is WriteRecord && attributes is { } given ? given : Ownership(basis, record);
        // The old content first, copied by the kernel (copy_file_range; a reflink where the filesystem shares
        // extents), not through this process's buffers: a resync patches a few blocks of many large files.
        // Not when the record rewrites the whole file (a small file saved again): nothing of the old content stays.
        var copied = record is WriteRecord rewrite && basis is not null && !RewritesWhole(rewrite) && TryCopy(basis, file);
        using var stream = new FileStream(file, copied
            ? new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.ReadWrite, Share = FileShare.None }
            : new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.ReadWrite, Share = FileShare.None, UnixCreateMode = mode });
        if (record is WriteRecord write)
        {
            Patch(stream, write);
        }

        Own(stream, mode, owner, group);
        Time(stream, record);
        stream.Flush(flushToDisk: sync);
    }

    /// <summary>Whether <paramref name="write"/>'s blocks cover the file from its start to its new length.</summary>
    internal static bool RewritesWhole(WriteRecord write)
    {
        var blocks = ((long)write.Length + write.BlockSize - 1) / write.BlockSize;
        if (write.Blocks.Count < blocks)
        {
            return false;
        }

        var covered = new HashSet<long>();
        foreach (var block in write.Blocks)
        {
            if (block.Index < blocks && (block.Content.Length == write.BlockSize || (long)block.Index * write.BlockSize + block.Content.Length >= (long)write.Length))
            {
                covered.Add(block.Index);
            }
        }

        return covered.Count == blocks;
    }

    /// <summary>Writes a further write record of the same path into a version <see cref="Build"/> staged.</summary>
    internal static void PatchStaged(string file, WriteRecord write)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        Patch(stream, write);
        Time(stream, write);
    }

    /// <summary>Writes a write record's blocks into the replica's file where they belong (a cut's patch step, under
    /// its redo log: not atomic on its own, made durable with the cut).</summary>
    internal static void PatchInPlace(string file, WriteRecord write)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        Patch(stream, write);
        Time(stream, write);
    }

    /// <summary>Gives a version the active's modification time, when the record carries it: after its last write
    /// (which sets the time again), so the stream's buffer goes to the kernel first.</summary>
    private static void Time(FileStream file, JournalRecord record)
    {
        var modified = record switch
        {
            WriteRecord write => write.Modified,
            CreateRecord create => create.Modified,
            _ => null,
        };
        if (modified is { } written)
        {
            file.Flush();
            FileTimes.SetModified(file.SafeFileHandle, written, file.Name);
        }
    }

    private static bool TryCopy(string basis, string file)
    {
        if (!File.Exists(basis))
        {
            return false;
        }

        try
        {
            File.Copy(basis, file, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Writes the new version into <paramref name="file"/> (the temporary file, holding the old content):
    /// the record's blocks over it, then the new length.</summary>
    private static void Patch(FileStream file, WriteRecord write)
    {
        long first = long.MaxValue, end = 0;
        foreach (var block in write.Blocks)
        {
            var at = (long)block.Index * write.BlockSize;
            file.Seek(at, SeekOrigin.Begin);
            file.Write(block.Content.Span);
            first = Math.Min(first, at);
            end = Math.Max(end, at + block.Content.Length);
        }

        file.SetLength((long)write.Length);
        if (write.ContentBytes >= WritebackFrom)
        {
            // A large change starts for the disk now, while the next records arrive: the cut's syncfs then waits for
            // what is left, not for the whole cut at once with the link idle (bulk copies ran at half the link).
            file.Flush();
            _ = DurableFile.StartWriteback(file.SafeFileHandle, first, end - first);
        }
    }

    /// <summary>A record carrying at least this much content starts its writeback at once (<see cref="Patch"/>);
    /// smaller ones are left to the cut's syncfs, which writes many small files together.</summary>
    internal const int WritebackFrom = 256 * 1024;
}
