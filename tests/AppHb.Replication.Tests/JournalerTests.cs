using AppHb.Core.Cluster;
using AppHb.Linux.Files;
using AppHb.Replication.Apply;
using AppHb.Replication.Capture;
using AppHb.Replication.Journal;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The journaler on a real tree, its journal applied by the cut applier: a large file travels as several
/// records of one cut, and a later change to it as the changed blocks only.</summary>
public sealed class JournalerTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void A_large_file_goes_as_several_records_of_one_cut_and_a_change_to_it_as_its_changed_blocks_only()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = _directory.File("replica");
        using var journal = JournalFile.Open(_directory.File("journal"));
        var journaler = new Journaler(source, journal, new DataGeneration(1, 1), blockSize: 4096);
        var applier = new CutApplier(replica, _directory.File("state"));
        var content = new byte[(600 * 4096) + 100];
        new Random(7).NextBytes(content);
        File.WriteAllBytes(Path.Combine(source, "big"), content);

        Assert.True(journaler.Journal([new TreeChange(TreeChangeKind.Created, "big", IsDirectory: false)]) > 0);
        var first = journal.ReadAfter(0).ToList();
        applier.ApplyCut(first);
        // Create, then 601 blocks in records of at most 256, then the cut.
        Assert.Equal([JournalRecordKind.Create, JournalRecordKind.Write, JournalRecordKind.Write, JournalRecordKind.Write, JournalRecordKind.Cut], first.Select(r => r.Kind));
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(replica, "big")));

        using (var file = new FileStream(Path.Combine(source, "big"), FileMode.Open))
        {
            foreach (var block in new[] { 3, 300, 600 })
            {
                file.Position = block * 4096L;
                file.Write("changed"u8);
            }
        }

        journaler.Journal([new TreeChange(TreeChangeKind.Written, "big", IsDirectory: false)]);
        var second = journal.ReadAfter(first[^1].Sequence).ToList();
        applier.ApplyCut(second);
        var write = Assert.IsType<WriteRecord>(second[0]);
        Assert.Equal([3u, 300u, 600u], write.Blocks.Select(b => b.Index));
        Assert.Equal(2, second.Count);
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "big")), File.ReadAllBytes(Path.Combine(replica, "big")));

        // Nothing changed: nothing journaled.
        Assert.Equal(0, journaler.Journal([new TreeChange(TreeChangeKind.Written, "big", IsDirectory: false)]));
    }

    [Fact]
    public void A_batch_past_the_cut_size_is_cut_between_files_and_each_cut_is_told_once_readable_before_the_rest_is_read()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = _directory.File("replica");
        using var journal = JournalFile.Open(_directory.File("journal"));
        var journaler = new Journaler(source, journal, new DataGeneration(1, 1), blockSize: 4096) { CutBytes = 10 << 20 };
        var applier = new CutApplier(replica, _directory.File("state"));
        var random = new Random(11);
        var names = new[] { "a", "b", "c", "d" };
        foreach (var name in names)
        {
            var content = new byte[6 << 20];
            random.NextBytes(content);
            File.WriteAllBytes(Path.Combine(source, name), content);
        }

        var told = new List<(ulong Cut, int DurableRecords)>();
        journaler.Journal(names.Select(n => new TreeChange(TreeChangeKind.Created, n, IsDirectory: false)),
            cut => told.Add((cut, journal.ReadAfter(0).Count())));

        var records = journal.ReadAfter(0).ToList();
        var cuts = records.Select((r, i) => (r, i)).Where(x => x.r.Kind == JournalRecordKind.Cut).Select(x => x.i).ToList();
        // 12 MiB after two files (past 10): a cut there, then the batch's own at its end; none inside a file.
        Assert.Equal(2, cuts.Count);
        Assert.Equal(JournalRecordKind.Create, records[cuts[0] + 1].Kind);
        Assert.Equal(["a", "b"], records.Take(cuts[0]).OfType<CreateRecord>().Select(r => r.Path));
        // Told of each cut, the batch's last included, once it was whole and readable (the sender sends it while it
        // is synced), and of the first before the rest was read.
        Assert.Equal([(records[cuts[0]].Sequence, cuts[0] + 1), (records[cuts[1]].Sequence, cuts[1] + 1)], told);

        applier.ApplyCut(records.Take(cuts[0] + 1).ToList());
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "b")), File.ReadAllBytes(Path.Combine(replica, "b")));
        Assert.False(File.Exists(Path.Combine(replica, "c")));
        applier.ApplyCut(records.Skip(cuts[0] + 1).ToList());
        foreach (var name in names)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(source, name)), File.ReadAllBytes(Path.Combine(replica, name)));
        }
    }

    /// <summary>Times: each record carries the file's, a write's time alone waits for the writer's close (a
    /// truncation then a write would otherwise send the truncation's time in a record of its own first), and the
    /// replica ends with the active's time to the nanosecond.</summary>
    [Fact]
    public void A_files_time_travels_with_its_content_and_alone_only_when_its_writer_closes_it()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = _directory.File("replica");
        using var journal = JournalFile.Open(_directory.File("journal"));
        var journaler = new Journaler(source, journal, new DataGeneration(1, 1), blockSize: 4096);
        var applier = new CutApplier(replica, _directory.File("state"));
        var file = Path.Combine(source, "f");
        File.WriteAllText(file, "same");
        FileTimes.SetModified(file, 1_700_000_000_123_456_789);
        void ApplyNew(ulong after) => applier.ApplyCut([.. journal.ReadAfter(after)]);
        long Time(string path) => FileStatus.Of(path)!.Value.ModifiedNanoseconds;

        journaler.Journal([new TreeChange(TreeChangeKind.Created, "f", IsDirectory: false)]);
        var create = Assert.IsType<CreateRecord>(journal.ReadAfter(0).First());
        Assert.Equal(1_700_000_000_123_456_789, create.Modified);
        Assert.Equal(1_700_000_000_123_456_789, journal.ReadAfter(0).OfType<WriteRecord>().Single().Modified);
        ApplyNew(0);
        Assert.Equal(Time(file), Time(Path.Combine(replica, "f")));

        // The same bytes written again: the write event sends nothing, the close sends the time alone.
        var before = journal.LastSequence;
        File.WriteAllText(file, "same");
        Assert.Equal(0, journaler.Journal([new TreeChange(TreeChangeKind.Written, "f", IsDirectory: false)]));
        Assert.True(journaler.Journal([new TreeChange(TreeChangeKind.Written, "f", IsDirectory: false), new TreeChange(TreeChangeKind.Closed, "f", IsDirectory: false)]) > 0);
        var alone = Assert.IsType<AttributesRecord>(journal.ReadAfter(before).First());
        Assert.Equal(Time(file), alone.ModifiedNanoseconds);
        ApplyNew(before);
        Assert.Equal(Time(file), Time(Path.Combine(replica, "f")));
        // Closed again with nothing new: nothing.
        Assert.Equal(0, journaler.Journal([new TreeChange(TreeChangeKind.Closed, "f", IsDirectory: false)]));

        // New content: its record carries the time, and the close after it has nothing left to send.
        before = journal.LastSequence;
        File.WriteAllText(file, "different");
        journaler.Journal([new TreeChange(TreeChangeKind.Written, "f", IsDirectory: false), new TreeChange(TreeChangeKind.Closed, "f", IsDirectory: false)]);
        Assert.Equal([JournalRecordKind.Write, JournalRecordKind.Cut], journal.ReadAfter(before).Select(r => r.Kind));
        ApplyNew(before);
        Assert.Equal(Time(file), Time(Path.Combine(replica, "f")));
        Assert.Equal("different", File.ReadAllText(Path.Combine(replica, "f")));
    }

    /// <summary>A file read while it grows (an application writing it, the journaler reading its earlier changes)
    /// has blocks past the length it had when the read began: every record must still cover its own blocks, or the
    /// journal holds a malformed record and is started again (the resync benchmark's bulk copy hit that every run).</summary>
    [Fact]
    public async Task A_file_read_while_it_grows_gives_records_that_cover_their_blocks()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        using var journal = JournalFile.Open(_directory.File("journal"));
        var journaler = new Journaler(source, journal, new DataGeneration(1, 1), blockSize: 4096);
        journaler.Resync([]);
        var path = Path.Combine(source, "growing");
        File.WriteAllBytes(path, []);
        var writer = Task.Run(() =>
        {
            var chunk = new byte[64 * 1024];
            using var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            while (file.Length < (64L << 20))
            {
                Random.Shared.NextBytes(chunk);
                file.Write(chunk);
            }
        }, TestContext.Current.CancellationToken);

        // Read while it grows (on a busy machine the writer may start late: the reads wait for it).
        Assert.True(await Polling.UntilAsync(() => Task.FromResult(new FileInfo(path).Length > 0 || writer.IsCompleted), TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        var reads = 0;
        while (!writer.IsCompleted)
        {
            journaler.Journal([new TreeChange(TreeChangeKind.Written, "growing", IsDirectory: false)]);
            reads++;
        }

        await writer;
        journaler.Journal([new TreeChange(TreeChangeKind.Written, "growing", IsDirectory: false)]);

        // Every record decodes (a malformed one throws here), and replayed in order they give the file.
        var rebuilt = new MemoryStream();
        var records = 0;
        foreach (var write in journal.ReadAfter(0).OfType<WriteRecord>())
        {
            foreach (var block in write.Blocks)
            {
                rebuilt.Position = (long)block.Index * write.BlockSize;
                rebuilt.Write(block.Content.Span);
            }

            rebuilt.SetLength((long)write.Length);
            records++;
        }

        Assert.True(records > 10, $"{records} write records in {reads} reads");
        Assert.Equal(File.ReadAllBytes(path), rebuilt.ToArray());
    }

    [Fact]
    public void The_dirty_set_names_what_changed_after_a_position_and_forgets_what_the_peer_acknowledged()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var generation = new DataGeneration(1, 1);
        using var journal = JournalFile.Open(_directory.File("journal"));
        var journaler = new Journaler(source, journal, generation, blockSize: 4096);
        Directory.CreateDirectory(Path.Combine(source, "dir"));
        File.WriteAllText(Path.Combine(source, "dir", "a"), "a");
        File.WriteAllText(Path.Combine(source, "b"), "b");
        File.WriteAllText(Path.Combine(source, "c"), "c");
        File.WriteAllText(Path.Combine(source, "e"), "e");

        // Before its first comparison a journaler cannot say what a replica lacks.
        Assert.Null(journaler.DirtySince(generation, 0));
        var (_, cut) = journaler.Resync([]);
        Assert.Empty(journaler.DirtySince(generation, cut)!);

        // Changed otherwise than by writes (a mode, a file made anew): compared by hashes at a resync.
        File.SetUnixFileMode(Path.Combine(source, "dir", "a"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        journaler.Journal([new TreeChange(TreeChangeKind.Attributes, "dir/a", IsDirectory: false)]);
        var afterA = journal.LastSequence;
        File.Delete(Path.Combine(source, "b"));
        journaler.Journal([new TreeChange(TreeChangeKind.Deleted, "b", IsDirectory: false)]);
        File.WriteAllText(Path.Combine(source, "b"), "b2");
        journaler.Journal([new TreeChange(TreeChangeKind.Created, "b", IsDirectory: false)]);
        // Only written: its written blocks go again, no comparison.
        File.WriteAllText(Path.Combine(source, "c"), "c2");
        journaler.Journal([new TreeChange(TreeChangeKind.Written, "c", IsDirectory: false)]);
        // Its time alone changed after that (a touch), and a file only touched: still their written blocks (none for
        // the touch alone), whose resend carries the time; not a comparison of the whole files by hashes.
        var beforeTouches = journal.LastSequence;
        File.SetLastWriteTimeUtc(Path.Combine(source, "c"), new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc));
        File.SetLastWriteTimeUtc(Path.Combine(source, "e"), new DateTime(2026, 1, 2, 3, 4, 6, DateTimeKind.Utc));
        journaler.Journal([new TreeChange(TreeChangeKind.Attributes, "c", IsDirectory: false), new TreeChange(TreeChangeKind.Attributes, "e", IsDirectory: false)]);
        Assert.Equal(2, journal.ReadAfter(beforeTouches).OfType<AttributesRecord>().Count());
        Assert.Equal(["b", "dir/a"], journaler.DirtySince(generation, cut));
        Assert.Equal(["b"], journaler.DirtySince(generation, afterA));
        Assert.Equal([("c", [0u]), ("e", [])], journaler.WrittenSince(cut).Select(w => (w.Path, w.Blocks.ToArray())));
        // Another generation's replica, or one at a position before the comparison: the whole tree.
        Assert.Null(journaler.DirtySince(new DataGeneration(2, 1), cut));
        Assert.Null(journaler.DirtySince(generation, cut - 1));

        // A resync of "dir/a" alone, asked before "b" changed: "b" is missing from it, and nothing is journaled.
        var last = journal.LastSequence;
        Assert.Null(journaler.TryResync([], ["dir/a"], cut, out var missing));
        Assert.Equal(["b"], missing);
        Assert.Equal(last, journal.LastSequence);
        Assert.NotNull(journaler.TryResync([], ["dir/a", "b"], cut, out missing));
        Assert.Empty(missing);

        // Acknowledged through the end: nothing left to say.
        journaler.Acknowledged(journal.LastSequence);
        Assert.Empty(journaler.DirtySince(generation, journal.LastSequence)!);
        Assert.Null(journaler.DirtySince(generation, last));
    }
}
