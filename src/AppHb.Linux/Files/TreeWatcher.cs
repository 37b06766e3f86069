using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace AppHb.Linux.Files;

/// <summary>What changed under a watched tree.</summary>
public enum TreeChangeKind
{
    /// <summary>A file, symlink or directory appeared (created, or moved in, or found by the scan of a new directory).</summary>
    Created,
    /// <summary>A file's content was written (reported at every write).</summary>
    Written,
    /// <summary>Mode, owner, times or link count changed.</summary>
    Attributes,
    /// <summary>Removed, or moved out of the tree.</summary>
    Deleted,
    /// <summary>Renamed within the tree: the old path is <see cref="TreeChange.Path"/>, the new one <see cref="TreeChange.NewPath"/>.</summary>
    Renamed,
    /// <summary>The kernel's queue overflowed: changes were dropped, anything may have changed (a resync of the tree).</summary>
    Overflow,
    /// <summary>A writer closed the file: what it wrote, and the time it set, are whole (until the next writer).</summary>
    Closed,
}

/// <summary>One change; paths relative to the watched root, with '/' separators; empty for <see cref="TreeChangeKind.Overflow"/>.</summary>
public readonly record struct TreeChange(TreeChangeKind Kind, string Path, bool IsDirectory, string? NewPath = null);

/// <summary>Reports every change under a directory tree from the kernel's notifications (recursive inotify), never by
/// polling. A directory that appears is watched and then scanned, and everything found in it is reported created: a
/// file made in it before its watch existed is not missed (the race every recursive inotify user must close). A
/// directory renamed within the tree keeps its watches under the new path; one moved out loses them. A queue overflow
/// is reported as such: what changed is then unknown, and the caller marks the whole tree dirty. Callbacks come from
/// the watcher's own thread, in the kernel's order.</summary>
public sealed class TreeWatcher : IDisposable
{
    private const uint Mask = Interop.Inotify.IN_CREATE | Interop.Inotify.IN_DELETE | Interop.Inotify.IN_MODIFY | Interop.Inotify.IN_CLOSE_WRITE
        | Interop.Inotify.IN_ATTRIB | Interop.Inotify.IN_MOVED_FROM | Interop.Inotify.IN_MOVED_TO | Interop.Inotify.IN_DONT_FOLLOW
        | Interop.Inotify.IN_EXCL_UNLINK | Interop.Inotify.IN_ONLYDIR;

    private readonly string _root;
    private readonly Action<TreeChange> _changed;
    private readonly Func<string, bool>? _inScope;
    private readonly Interop.FileDescriptorHandle _inotify;
    private readonly Interop.FileDescriptorHandle _wake;
    private readonly Dictionary<int, string> _directories = [];
    private readonly Dictionary<string, int> _watches = new(StringComparer.Ordinal);
    private readonly Thread _thread;
    private volatile bool _stopping;
    /// <summary>A MOVED_FROM waiting for the MOVED_TO with its cookie (they come one after the other when both ends
    /// are watched); reported as a deletion when anything else comes next.</summary>
    private (uint Cookie, string Path, bool IsDirectory)? _movedFrom;
    private int _watchCount;

    private TreeWatcher(string root, Action<TreeChange> changed, Func<string, bool>? watches, Interop.FileDescriptorHandle inotify, Interop.FileDescriptorHandle wake)
    {
        _root = root;
        _changed = changed;
        _inScope = watches;
        _inotify = inotify;
        _wake = wake;
        _thread = new Thread(Run) { Name = "apphb-capture", IsBackground = true };
    }

    /// <summary>How many directories are watched.</summary>
    public int Directories => Volatile.Read(ref _watchCount);

    /// <summary>Watches every directory under <paramref name="root"/> (which must exist) and starts reporting.
    /// With <paramref name="watches"/>, only the paths (relative) it says yes to are watched and scanned: a path it
    /// says no to is not entered, and not reported by a scan (an event of a watched directory about it still is).</summary>
    /// <exception cref="IOException">inotify refused (the watch limit, fs.inotify.max_user_watches, is the usual
    /// reason: the message says so).</exception>
    public static TreeWatcher Start(string root, Action<TreeChange> changed, Func<string, bool>? watches = null)
    {
        ArgumentNullException.ThrowIfNull(changed);
        var full = System.IO.Path.GetFullPath(root);
        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"{full}: no such directory to watch");
        }

        var fd = Interop.InotifyInit1(Interop.Inotify.IN_NONBLOCK | Interop.Inotify.IN_CLOEXEC);
        if (fd < 0)
        {
            throw new IOException($"inotify_init1 failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        var inotify = new Interop.FileDescriptorHandle(fd);
        var wake = Interop.EventFd(0, Interop.EFD_CLOEXEC | Interop.EFD_NONBLOCK);
        if (wake < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            inotify.Dispose();
            throw new IOException($"eventfd failed: {Interop.Describe(errno)}");
        }

        var watcher = new TreeWatcher(full, changed, watches, inotify, new Interop.FileDescriptorHandle(wake));
        try
        {
            watcher.WatchTree(string.Empty, report: false);
        }
        catch
        {
            watcher.Dispose();
            throw;
        }

        watcher._thread.Start();
        return watcher;
    }

    public void Dispose()
    {
        if (!_stopping)
        {
            _stopping = true;
            Wake();
            if (_thread.IsAlive && Environment.CurrentManagedThreadId != _thread.ManagedThreadId)
            {
                _thread.Join();
            }
        }

        _inotify.Dispose();
        _wake.Dispose();
    }

    private unsafe void Wake()
    {
        ulong one = 1;
        _ = Interop.Write(_wake.Fd, &one, sizeof(ulong));
    }

    /// <summary>Watches <paramref name="relative"/> and every directory under it; with <paramref name="report"/>,
    /// reports everything found in them as created (they appeared after the last look).</summary>
    private void WatchTree(string relative, bool report)
    {
        var pending = new Stack<string>();
        pending.Push(relative);
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            var full = Full(directory);
            var wd = Interop.InotifyAddWatch(_inotify.Fd, full, Mask);
            if (wd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is Interop.Errno.ENOENT or 20 /* ENOTDIR */)
                {
                    // Gone (or replaced by a file) since it was seen: its deletion is reported by its parent's watch.
                    continue;
                }

                throw new IOException(errno == Interop.Errno.ENOSPC
                    ? $"{full}: cannot watch it: the inotify watch limit is reached (raise fs.inotify.max_user_watches)"
                    : $"{full}: cannot watch it: {Interop.Describe(errno)}");
            }

            if (_directories.TryGetValue(wd, out var known) && known != directory)
            {
                _watches.Remove(known);
            }

            _directories[wd] = directory;
            _watches[directory] = wd;
            Volatile.Write(ref _watchCount, _directories.Count);
            List<FileSystemInfo> entries;
            try
            {
                entries = [.. new DirectoryInfo(full).EnumerateFileSystemInfos()];
            }
            catch (Exception e) when (e is DirectoryNotFoundException or IOException or UnauthorizedAccessException)
            {
                continue;
            }

            foreach (var entry in entries)
            {
                var child = Join(directory, entry.Name);
                if (!Watches(child))
                {
                    continue;
                }

                // What the enumeration already read: no stat of its own per entry. A symlink to a directory is a link.
                var isDirectory = entry is DirectoryInfo && entry.LinkTarget is null;
                if (report)
                {
                    _changed(new TreeChange(TreeChangeKind.Created, child, isDirectory));
                }

                if (isDirectory)
                {
                    pending.Push(child);
                }
            }
        }
    }

    private bool Watches(string relative) => _inScope?.Invoke(relative) != false;

    private string Full(string relative) => relative.Length == 0 ? _root : System.IO.Path.Combine(_root, relative);

    private static string Join(string directory, string name) => directory.Length == 0 ? name : $"{directory}/{name}";

    private unsafe void Run()
    {
        var buffer = new byte[64 * 1024];
        var polls = stackalloc Interop.PollFd[2];
        while (!_stopping)
        {
            polls[0] = new Interop.PollFd { Fd = _inotify.Fd, Events = Interop.POLLIN };
            polls[1] = new Interop.PollFd { Fd = _wake.Fd, Events = Interop.POLLIN };
            var ready = Interop.PPoll(polls, 2, null, null);
            if (ready < 0)
            {
                if (Marshal.GetLastPInvokeError() == Interop.Errno.EINTR)
                {
                    continue;
                }

                return;
            }

            if (_stopping)
            {
                return;
            }

            while (true)
            {
                nint read;
                fixed (byte* at = buffer)
                {
                    read = Interop.Read(_inotify.Fd, at, (nuint)buffer.Length);
                }

                if (read <= 0)
                {
                    break;
                }

                Dispatch(buffer.AsSpan(0, (int)read));
            }

            FlushMovedFrom();
        }
    }

    private void Dispatch(ReadOnlySpan<byte> events)
    {
        var at = 0;
        while (at + Interop.Inotify.EventHeaderSize <= events.Length)
        {
            var wd = BinaryPrimitives.ReadInt32LittleEndian(events[at..]);
            var mask = BinaryPrimitives.ReadUInt32LittleEndian(events[(at + 4)..]);
            var cookie = BinaryPrimitives.ReadUInt32LittleEndian(events[(at + 8)..]);
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(events[(at + 12)..]);
            var nameBytes = events.Slice(at + Interop.Inotify.EventHeaderSize, length);
            var end = nameBytes.IndexOf((byte)0);
            var name = Encoding.UTF8.GetString(end < 0 ? nameBytes : nameBytes[..end]);
            at += Interop.Inotify.EventHeaderSize + length;
            Handle(wd, mask, cookie, name);
        }
    }

    private void Handle(int wd, uint mask, uint cookie, string name)
    {
        if ((mask & Interop.Inotify.IN_Q_OVERFLOW) != 0)
        {
            FlushMovedFrom();
            _changed(new TreeChange(TreeChangeKind.Overflow, string.Empty, IsDirectory: true));
            return;
        }

        if ((mask & Interop.Inotify.IN_IGNORED) != 0)
        {
            if (_directories.Remove(wd, out var gone) && _watches.TryGetValue(gone, out var current) && current == wd)
            {
                _watches.Remove(gone);
            }

            Volatile.Write(ref _watchCount, _directories.Count);
            return;
        }

        if (!_directories.TryGetValue(wd, out var directory) || name.Length == 0)
        {
            return;
        }

        var path = Join(directory, name);
        var isDirectory = (mask & Interop.Inotify.IN_ISDIR) != 0;
        if ((mask & Interop.Inotify.IN_MOVED_TO) != 0 && _movedFrom is { } from && from.Cookie == cookie)
        {
            _movedFrom = null;
            if (isDirectory)
            {
                Rewrite(from.Path, path);
            }

            _changed(new TreeChange(TreeChangeKind.Renamed, from.Path, isDirectory, path));
            if (isDirectory && !Watches(path))
            {
                // Moved where nothing is watched: its watches go.
                Unwatch(path);
            }
            else if (isDirectory)
            {
                // Events from inside it that were queued before the rename named the old path, which no longer
                // exists by the time they are read: a directory made in it then could not be watched, and a file
                // written then could not be read. Watching and scanning it again under its new path finds both.
                WatchTree(path, report: true);
            }

            return;
        }

        FlushMovedFrom();
        if ((mask & Interop.Inotify.IN_MOVED_FROM) != 0)
        {
            _movedFrom = (cookie, path, isDirectory);
            return;
        }

        if ((mask & (Interop.Inotify.IN_CREATE | Interop.Inotify.IN_MOVED_TO)) != 0)
        {
            _changed(new TreeChange(TreeChangeKind.Created, path, isDirectory));
            if (isDirectory && Watches(path))
            {
                // Watch first, then look: whatever was made in it before the watch is found by the scan, whatever
                // comes after by the watch (found twice at worst, never missed).
                WatchTree(path, report: true);
            }
        }
        else if ((mask & Interop.Inotify.IN_DELETE) != 0)
        {
            _changed(new TreeChange(TreeChangeKind.Deleted, path, isDirectory));
        }
        else if ((mask & Interop.Inotify.IN_MODIFY) != 0)
        {
            _changed(new TreeChange(TreeChangeKind.Written, path, isDirectory));
        }
        else if ((mask & Interop.Inotify.IN_CLOSE_WRITE) != 0)
        {
            _changed(new TreeChange(TreeChangeKind.Closed, path, isDirectory));
        }
        else if ((mask & Interop.Inotify.IN_ATTRIB) != 0)
        {
            _changed(new TreeChange(TreeChangeKind.Attributes, path, isDirectory));
        }
    }

    /// <summary>A MOVED_FROM whose MOVED_TO did not follow: moved out of the tree. A directory's watches go with it.</summary>
    private void FlushMovedFrom()
    {
        if (_movedFrom is not { } from)
        {
            return;
        }

        _movedFrom = null;
        if (from.IsDirectory)
        {
            Unwatch(from.Path);
        }

        _changed(new TreeChange(TreeChangeKind.Deleted, from.Path, from.IsDirectory));
    }

    /// <summary>Stops watching <paramref name="path"/> and every directory under it.</summary>
    private void Unwatch(string path)
    {
        foreach (var (directory, wd) in _watches.Where(w => Under(w.Key, path)).ToList())
        {
            _ = Interop.InotifyRmWatch(_inotify.Fd, wd);
            _watches.Remove(directory);
            _directories.Remove(wd);
        }

        Volatile.Write(ref _watchCount, _directories.Count);
    }

    /// <summary>A directory renamed within the tree: its watches (and its subdirectories') follow the inode; only
    /// the paths they stand for change.</summary>
    private void Rewrite(string from, string to)
    {
        foreach (var (directory, wd) in _watches.Where(w => Under(w.Key, from)).ToList())
        {
            var moved = to + directory[from.Length..];
            _watches.Remove(directory);
            _watches[moved] = wd;
            _directories[wd] = moved;
        }
    }

    private static bool Under(string path, string directory) =>
        path == directory || path.StartsWith(directory + "/", StringComparison.Ordinal);
}
