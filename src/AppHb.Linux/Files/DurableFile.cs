using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AppHb.Linux.Files;

/// <summary>Replaces a small file so that after a crash or power loss at any moment it holds either its old content or
/// its new one, whole: a temporary file beside it, written and fsync'd, renamed over it, then the directory fsync'd
/// (without that, the rename itself may not survive). For state that decides who may become active: a node's data
/// generations and boot epoch.</summary>
public static class DurableFile
{
    /// <exception cref="IOException">The directory is not writable, the disk is full, or a sync failed.</exception>
    public static void Replace(string path, ReadOnlySpan<byte> content, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var bytes = content.ToArray();
        Replace(path, file => file.Write(bytes), mode);
    }

    /// <summary>The same, with the new content written by <paramref name="write"/> into the temporary file (which it
    /// may also read, seek and truncate): for a new version made from the old one, as replication applies changed
    /// blocks.</summary>
    /// <exception cref="IOException">The directory is not writable, the disk is full, or a sync failed.</exception>
    public static void Replace(string path, Action<FileStream> write, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var file = new FileStream(temporary, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.ReadWrite,
                Share = FileShare.None,
                UnixCreateMode = mode,
            }))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temporary);
            }
            catch (IOException)
            {
            }

            throw;
        }

        SyncDirectory(directory);
    }

    /// <summary>fsync(2) of a directory: makes a rename, a creation or a removal in it durable.</summary>
    /// <exception cref="IOException">The directory cannot be opened or synced.</exception>
    public static void SyncDirectory(string directory) => OnDirectory(directory, Interop.FSync, "fsync");

    /// <summary>syncfs(2) of the filesystem holding <paramref name="directory"/>: every file written, renamed or
    /// removed on it so far is durable when this returns (a group commit for many files at once).</summary>
    /// <exception cref="IOException">The directory cannot be opened, or the filesystem reported a write error.</exception>
    public static void SyncFileSystem(string directory) => OnDirectory(directory, Interop.SyncFs, "syncfs");

    /// <summary>fdatasync(2) of an open file, after its buffer is written: its data is durable when this returns,
    /// without the journal commit an fsync makes for its modification time alone (a file overwritten in place,
    /// whose blocks are all allocated already, costs one data write).</summary>
    /// <exception cref="IOException">The filesystem reported a write error (named with the file).</exception>
    public static void SyncData(FileStream file)
    {
        ArgumentNullException.ThrowIfNull(file);
        file.Flush(flushToDisk: false);
        SyncData(file.SafeFileHandle, file.Name);
    }

    /// <summary>fdatasync(2) of an open file's handle, written to without a buffer (or flushed): safe from another
    /// thread than its writer's, which may go on writing meanwhile (what it writes then may or may not be synced).</summary>
    /// <exception cref="IOException">The filesystem reported a write error (named with <paramref name="name"/>).</exception>
    public static void SyncData(SafeFileHandle handle, string name)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (Interop.FDataSync((int)handle.DangerousGetHandle()) != 0)
        {
            throw new IOException($"fdatasync of {name} failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>Starts writing what was written to <paramref name="file"/> between <paramref name="offset"/> and
    /// <paramref name="offset"/> + <paramref name="length"/> to the disk, without waiting (sync_file_range's
    /// SYNC_FILE_RANGE_WRITE): a later fsync or syncfs then finds little left to write, so the disk works while the
    /// caller goes on instead of all at once in that sync. It makes nothing durable on its own. Best effort: a file
    /// system that refuses it is written at the sync, as without it.</summary>
    /// <returns>Whether the kernel took the request (not, e.g., for a pipe).</returns>
    public static bool StartWriteback(SafeFileHandle file, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(file);
        var added = false;
        try
        {
            file.DangerousAddRef(ref added);
            return Interop.SyncFileRange((int)file.DangerousGetHandle(), offset, length, Interop.SYNC_FILE_RANGE_WRITE) == 0;
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }

    private static void OnDirectory(string directory, Func<int, int> call, string name)
    {
        var fd = Interop.Open(directory, Interop.O_RDONLY | Interop.O_DIRECTORY | Interop.O_CLOEXEC);
        if (fd < 0)
        {
            throw new IOException($"cannot open {directory} for {name}: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        try
        {
            if (call(fd) != 0)
            {
                throw new IOException($"{name} of {directory} failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
            }
        }
        finally
        {
            _ = Interop.Close(fd);
        }
    }
}
