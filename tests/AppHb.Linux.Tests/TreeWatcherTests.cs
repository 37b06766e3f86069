using System.Collections.Concurrent;
using AppHb.Linux.Files;
using AppHb.Testing;

namespace AppHb.Linux.Tests;

/// <summary>Capture for replication: a real tree on a real filesystem changed by this process, the kernel's inotify
/// reporting it. Nothing may be missed: not a file made in a directory before its watch existed, not a change after a
/// directory was renamed, and a dropped queue is said, never silent.</summary>
public sealed class TreeWatcherTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly TempDirectory _directory = new();
    private readonly ConcurrentQueue<TreeChange> _changes = new();

    public void Dispose() => _directory.Dispose();

    private string Root => _directory.Path;

    private Task<bool> Seen(Func<TreeChange, bool> match) =>
        Polling.UntilAsync(() => _changes.Any(match), Patience, TestContext.Current.CancellationToken);

    private string Said => string.Join("\n", _changes);

    [Fact]
    public async Task Creates_writes_attribute_changes_renames_and_deletions_are_reported_with_their_paths()
    {
        using var watcher = TreeWatcher.Start(Root, _changes.Enqueue);
        var file = Path.Combine(Root, "a.txt");
        await File.WriteAllTextAsync(file, "one", TestContext.Current.CancellationToken);
        File.SetUnixFileMode(file, UnixFileMode.UserRead);
        File.Move(file, Path.Combine(Root, "b.txt"));
        File.Delete(Path.Combine(Root, "b.txt"));

        Assert.True(await Seen(c => c is { Kind: TreeChangeKind.Deleted, Path: "b.txt" }), Said);
        // The kernel reports a close when the last reference to the open file goes: a process another test forks
        // meanwhile holds a copy of the descriptor until its exec, so the close may come after the chmod, the rename
        // (named b.txt then), or the deletion. A busy core once showed it after the chmod.
        Assert.True(await Seen(c => c is { Kind: TreeChangeKind.Closed, Path: "a.txt" or "b.txt" }), Said);
        var kinds = _changes.Select(c => (c.Kind, c.Path)).ToList();
        Assert.Equal(
            [(TreeChangeKind.Created, "a.txt"), (TreeChangeKind.Written, "a.txt"), (TreeChangeKind.Attributes, "a.txt"), (TreeChangeKind.Renamed, "a.txt"), (TreeChangeKind.Deleted, "b.txt")],
            kinds.Where(k => k.Kind != TreeChangeKind.Closed).Distinct().ToList());
        Assert.True(kinds.FindIndex(k => k.Kind == TreeChangeKind.Closed) > kinds.IndexOf((TreeChangeKind.Written, "a.txt")), Said);
        Assert.Equal("b.txt", _changes.Single(c => c.Kind == TreeChangeKind.Renamed).NewPath);
    }

    [Fact]
    public async Task Files_made_in_a_new_directory_before_its_watch_existed_are_found_and_later_writes_followed()
    {
        using var watcher = TreeWatcher.Start(Root, _changes.Enqueue);
        // As fast as the process can: the file exists before the watcher's thread has read the directory's creation.
        for (var i = 0; i < 20; i++)
        {
            var deep = Path.Combine(Root, $"tree{i}", "b", "c");
            Directory.CreateDirectory(deep);
            File.WriteAllText(Path.Combine(deep, "early"), "x");
        }

        for (var i = 0; i < 20; i++)
        {
            Assert.True(await Seen(c => c is { Kind: TreeChangeKind.Created or TreeChangeKind.Written } && c.Path == $"tree{i}/b/c/early"), $"tree{i}/b/c/early missed:\n{Said}");
        }

        Assert.True(await Polling.UntilAsync(() => watcher.Directories == 1 + 20 * 3, Patience, TestContext.Current.CancellationToken), $"{watcher.Directories} directories watched");
        int Writes() => _changes.Count(d => d is { Kind: TreeChangeKind.Written, Path: "tree7/b/c/early" });
        var before = Writes();
        File.AppendAllText(Path.Combine(Root, "tree7", "b", "c", "early"), "y");
        Assert.True(await Polling.UntilAsync(() => Writes() > before, Patience, TestContext.Current.CancellationToken), Said);
    }

    [Fact]
    public async Task A_directory_renamed_within_the_tree_reports_later_changes_under_its_new_path_and_one_moved_out_is_deleted()
    {
        Directory.CreateDirectory(Path.Combine(Root, "old", "sub"));
        var outside = Path.Combine(_directory.Path, "..", Path.GetFileName(_directory.Path) + "-outside");
        using var watcher = TreeWatcher.Start(Path.Combine(Root), _changes.Enqueue);
        Directory.Move(Path.Combine(Root, "old"), Path.Combine(Root, "new"));
        File.WriteAllText(Path.Combine(Root, "new", "sub", "f"), "x");
        Assert.True(await Seen(c => c is { Kind: TreeChangeKind.Created, Path: "new/sub/f" }), Said);
        Assert.Contains(_changes, c => c is { Kind: TreeChangeKind.Renamed, Path: "old", NewPath: "new", IsDirectory: true });

        try
        {
            Directory.Move(Path.Combine(Root, "new"), outside);
            Assert.True(await Seen(c => c is { Kind: TreeChangeKind.Deleted, Path: "new", IsDirectory: true }), Said);
            Assert.True(await Polling.UntilAsync(() => watcher.Directories == 1, Patience, TestContext.Current.CancellationToken), $"{watcher.Directories} directories still watched");
            File.WriteAllText(Path.Combine(outside, "sub", "g"), "not ours");
            File.WriteAllText(Path.Combine(Root, "marker"), "x");
            Assert.True(await Seen(c => c.Path == "marker"), Said);
            Assert.DoesNotContain(_changes, c => c.Path.EndsWith("/g", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public async Task Only_the_directories_it_is_told_to_watch_are_watched_and_scanned()
    {
        // The replicated members under a root (srv/data; etc leads to the single file etc/hosts): nothing else under
        // the root costs a watch, however large (a root of / would otherwise watch the whole system).
        foreach (var directory in new[] { "srv/data/db", "srv/other/deep", "etc", "usr/lib" })
        {
            Directory.CreateDirectory(Path.Combine(Root, directory));
        }

        static bool Watched(string path) => path is "" or "srv" or "etc" or "srv/data" || path.StartsWith("srv/data/", StringComparison.Ordinal) || path == "etc/hosts";
        using var watcher = TreeWatcher.Start(Root, _changes.Enqueue, Watched);
        Assert.Equal(5, watcher.Directories);

        // A directory made where nothing is watched is not entered; one made in a member is, and scanned.
        Directory.CreateDirectory(Path.Combine(Root, "srv/other/new"));
        File.WriteAllText(Path.Combine(Root, "srv/other/new/f"), "x");
        Directory.CreateDirectory(Path.Combine(Root, "srv/data/new"));
        File.WriteAllText(Path.Combine(Root, "srv/data/new/f"), "x");
        File.WriteAllText(Path.Combine(Root, "etc/hosts"), "x");
        Assert.True(await Seen(c => c.Path == "etc/hosts"), Said);
        Assert.True(await Seen(c => c.Path == "srv/data/new/f"), Said);
        Assert.Equal(6, watcher.Directories);
        Assert.DoesNotContain(_changes, c => c.Path.StartsWith("srv/other/", StringComparison.Ordinal) || c.Path.StartsWith("usr/", StringComparison.Ordinal));

        // A member's directory moved where nothing is watched loses its watches.
        Directory.Move(Path.Combine(Root, "srv/data"), Path.Combine(Root, "srv/elsewhere"));
        Assert.True(await Seen(c => c is { Kind: TreeChangeKind.Renamed, Path: "srv/data", NewPath: "srv/elsewhere" }), Said);
        Assert.True(await Polling.UntilAsync(() => watcher.Directories == 3, Patience, TestContext.Current.CancellationToken), $"{watcher.Directories} directories watched");
    }

    [Fact]
    public async Task A_queue_overflow_is_reported_never_silent()
    {
        var limit = int.Parse(File.ReadAllText("/proc/sys/fs/inotify/max_queued_events").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(limit <= 1_000_000, $"max_queued_events is {limit}: too many events to produce in a test");
        using var hold = new ManualResetEventSlim(false);
        using var watcher = TreeWatcher.Start(Root, change =>
        {
            // The first change holds the watcher's thread (as a busy journaler would) while the kernel's queue fills:
            // bounded far above Patience, as the writes below may crawl on a busy machine (a CI run saw over 20 s).
            hold.Wait(TimeSpan.FromMinutes(5));
            _changes.Enqueue(change);
        });
        var a = Path.Combine(Root, "a");
        var b = Path.Combine(Root, "b");
        File.WriteAllText(a, string.Empty);
        File.WriteAllText(b, string.Empty);
        try
        {
            using var first = new FileStream(a, FileMode.Append);
            using var second = new FileStream(b, FileMode.Append);
            // Alternating files: the kernel merges only an event identical to the one before it. Twice the limit: a
            // margin of 100 was seen to end just short of an overflow (16,492 changes queued, every one delivered).
            for (var i = 0; i < 2 * limit + 100; i++)
            {
                (i % 2 == 0 ? first : second).WriteByte(1);
                (i % 2 == 0 ? first : second).Flush();
            }
        }
        finally
        {
            hold.Set();
        }

        Assert.True(await Seen(c => c.Kind == TreeChangeKind.Overflow), $"no overflow among {_changes.Count} changes");
    }
}
