using AppHb.Core.Cluster;
using AppHb.Linux.Files;
using AppHb.Replication.Apply;
using AppHb.Replication.CrashWorker;
using AppHb.Replication.Journal;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>Cuts: the records of a cut become visible together; a real cut applier killed at random moments and then
/// recovered leaves every file at the same cut, never some files at one cut and some at the next.</summary>
public sealed class CutApplierTests : IDisposable
{
    private static readonly DataGeneration Generation = new(1, 1);
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string Replica => Path.Combine(_directory.Path, "replica");

    private string State => Path.Combine(_directory.Path, "state");

    [Fact]
    public void A_cut_follows_its_paths_through_renames_and_deletions_before_anything_is_installed()
    {
        Directory.CreateDirectory(Replica);
        File.WriteAllText(Path.Combine(Replica, "old"), "0123456789");
        File.WriteAllText(Path.Combine(Replica, "gone"), "x");
        var cuts = new CutApplier(Replica, State);

        cuts.ApplyCut(
        [
            // Block 1 of "old" changes, then "old" becomes "new", then block 0 of "new" changes: the second write builds
            // on the first one's version, which is at "new" only by then.
            new WriteRecord(1, Generation, "old", 10, 4, [new BlockChange(1, "ABCD"u8.ToArray())]),
            new RenameRecord(2, Generation, "old", "new"),
            new WriteRecord(3, Generation, "new", 10, 4, [new BlockChange(0, "wxyz"u8.ToArray())]),
            new DeleteRecord(4, Generation, "gone"),
            new CreateRecord(5, Generation, "gone", 0b110_000_000),
            new WriteRecord(6, Generation, "gone", 2, 4, [new BlockChange(0, "hi"u8.ToArray())]),
            new CutRecord(7, Generation),
        ]);

        Assert.Equal("wxyzABCD89", File.ReadAllText(Path.Combine(Replica, "new")));
        Assert.False(File.Exists(Path.Combine(Replica, "old")));
        Assert.Equal("hi", File.ReadAllText(Path.Combine(Replica, "gone")));
        Assert.Empty(Directory.GetFiles(Path.Combine(State, "staging")));
        // The redo log stays (written in place for the next cut), finished: its cut is the replica's position.
        Assert.Null(cuts.Recover());
        Assert.Null(new CutApplier(Replica, State).Recover());
        Assert.Equal((Generation, 7ul), new CutApplier(Replica, State).LastApplied);
    }

    [Fact]
    public void A_large_change_in_several_write_records_of_one_cut_builds_one_version_from_all_of_them()
    {
        Directory.CreateDirectory(Replica);
        File.WriteAllText(Path.Combine(Replica, "big"), "0123456789");
        File.SetUnixFileMode(Path.Combine(Replica, "big"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var cuts = new CutApplier(Replica, State);

        // As the journaler splits one read of a file: each record carries the length at the start, the last the end's.
        cuts.ApplyCut(
        [
            new WriteRecord(1, Generation, "big", 10, 4, [new BlockChange(0, "ABCD"u8.ToArray())]),
            new WriteRecord(2, Generation, "big", 10, 4, [new BlockChange(1, "EFGH"u8.ToArray())]),
            new WriteRecord(3, Generation, "big", 14, 4, [new BlockChange(2, "IJKL"u8.ToArray()), new BlockChange(3, "MN"u8.ToArray())]),
            new WriteRecord(4, Generation, "other", 2, 4, [new BlockChange(0, "ok"u8.ToArray())]),
            new CutRecord(5, Generation),
        ]);

        Assert.Equal("ABCDEFGHIJKLMN", File.ReadAllText(Path.Combine(Replica, "big")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(Path.Combine(Replica, "big")));
        Assert.Equal("ok", File.ReadAllText(Path.Combine(Replica, "other")));
        Assert.Empty(Directory.GetFiles(Path.Combine(State, "staging")));
    }

    [Fact]
    public void A_write_under_a_directory_renamed_earlier_in_the_cut_builds_on_the_file_the_rename_carried()
    {
        Directory.CreateDirectory(Path.Combine(Replica, "dir", "sub"));
        File.WriteAllText(Path.Combine(Replica, "dir", "sub", "a"), "0123456789");
        var cuts = new CutApplier(Replica, State);

        cuts.ApplyCut(
        [
            new RenameRecord(1, Generation, "dir", "moved"),
            // Only block 1 changes: the rest must come from the file now at moved/sub/a, which was dir/sub/a.
            new WriteRecord(2, Generation, "moved/sub/a", 10, 4, [new BlockChange(1, "ABCD"u8.ToArray())]),
            new CutRecord(3, Generation),
        ]);

        Assert.Equal("0123ABCD89", File.ReadAllText(Path.Combine(Replica, "moved", "sub", "a")));
        Assert.False(Directory.Exists(Path.Combine(Replica, "dir")));
        Assert.Equal((Generation, 3ul), cuts.LastApplied);
        Assert.Equal((Generation, 3ul), new CutApplier(Replica, State).LastApplied);
    }

    [Fact]
    public void A_cut_is_staged_on_disk_record_by_record_before_its_cut_record_arrives()
    {
        Directory.CreateDirectory(Replica);
        var cuts = new CutApplier(Replica, State);
        var content = new byte[1 << 20];
        Random.Shared.NextBytes(content);

        using (var staged = cuts.Begin())
        {
            staged.Add(new WriteRecord(1, Generation, "big", (ulong)content.Length, content.Length, [new BlockChange(0, content)]));
            // The version is on disk already (the record need not stay in memory), and not in the replica.
            var file = Assert.Single(Directory.GetFiles(Path.Combine(State, "staging")));
            Assert.Equal(content, File.ReadAllBytes(file));
            Assert.False(File.Exists(Path.Combine(Replica, "big")));
            Assert.Throws<InvalidOperationException>(staged.Apply);
        }

        // Disposed without its cut record: what it staged is gone, the replica never saw it.
        Assert.Empty(Directory.GetFiles(Path.Combine(State, "staging")));
        Assert.False(File.Exists(Path.Combine(Replica, "big")));
        Assert.Equal((DataGeneration.None, 0ul), cuts.LastApplied);
    }

    [Fact]
    public void A_version_rewriting_the_whole_file_keeps_nothing_of_the_old_one_and_one_rewriting_part_keeps_the_rest()
    {
        Directory.CreateDirectory(Replica);
        var file = Path.Combine(Replica, "data");
        File.WriteAllText(file, "abcdefghij");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var cuts = new CutApplier(Replica, State);

        // Every block up to the new length: built new, the old content not copied first (a small file saved again).
        var whole = new WriteRecord(1, Generation, "data", 6, 4, [new BlockChange(1, "EF"u8.ToArray()), new BlockChange(0, "ABCD"u8.ToArray())]);
        Assert.True(ReplicaApplier.RewritesWhole(whole));
        Apply(cuts, whole, new CutRecord(2, Generation));
        Assert.Equal("ABCDEF", File.ReadAllText(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(file));

        // The last block short of the length: the old bytes after it stay, so the old content is the basis.
        var part = new WriteRecord(3, Generation, "data", 6, 4, [new BlockChange(0, "wxyz"u8.ToArray()), new BlockChange(1, "1"u8.ToArray())]);
        Assert.False(ReplicaApplier.RewritesWhole(part));
        Apply(cuts, part, new CutRecord(4, Generation));
        Assert.Equal("wxyz1F", File.ReadAllText(file));

        Assert.True(ReplicaApplier.RewritesWhole(new WriteRecord(5, Generation, "data", 0, 4, [])));
        Assert.False(ReplicaApplier.RewritesWhole(new WriteRecord(5, Generation, "data", 9, 4, [new BlockChange(0, "abcd"u8.ToArray()), new BlockChange(2, "i"u8.ToArray())])));
    }

    private static void Apply(CutApplier cuts, params JournalRecord[] records)
    {
        using var staged = cuts.Begin();
        foreach (var record in records)
        {
            staged.Add(record);
        }

        staged.Apply();
    }

    [Fact]
    public void Consecutive_cuts_staged_together_apply_up_to_the_last_whole_one_unless_later_records_changed_its_versions()
    {
        Directory.CreateDirectory(Replica);
        File.WriteAllText(Path.Combine(Replica, "a"), "01234567");
        var cuts = new CutApplier(Replica, State);

        using (var staged = cuts.Begin())
        {
            staged.Add(new WriteRecord(1, Generation, "a", 8, 4, [new BlockChange(0, "ABCD"u8.ToArray())]));
            staged.Add(new CutRecord(2, Generation));
            staged.Add(new WriteRecord(3, Generation, "b", 2, 4, [new BlockChange(0, "bb"u8.ToArray())]));
            Assert.Equal(1, staged.RecordsAfterCut);
            Assert.False(staged.ChangedBeforeCut);
            // The connection ends here: the whole cut is applied, the unfinished one dropped.
            staged.Apply();
        }

        Assert.Equal("ABCD4567", File.ReadAllText(Path.Combine(Replica, "a")));
        Assert.False(File.Exists(Path.Combine(Replica, "b")));
        Assert.Equal((Generation, 2ul), cuts.LastApplied);
        Assert.Empty(Directory.GetFiles(Path.Combine(State, "staging")));

        using (var staged = cuts.Begin())
        {
            staged.Add(new WriteRecord(3, Generation, "a", 8, 4, [new BlockChange(1, "EFGH"u8.ToArray())]));
            staged.Add(new CutRecord(4, Generation));
            // The next part of "a" goes into the version cut 4 staged: cut 4 alone can no longer be installed.
            staged.Add(new WriteRecord(5, Generation, "a", 8, 4, [new BlockChange(0, "wxyz"u8.ToArray())]));
            Assert.True(staged.ChangedBeforeCut);
            var refused = Assert.Throws<InvalidOperationException>(staged.Apply);
            Assert.Contains("changed versions it staged", refused.Message, StringComparison.Ordinal);
            // Once whole again, both cuts are applied as one.
            staged.Add(new CutRecord(6, Generation));
            staged.Apply();
        }

        Assert.Equal("wxyzEFGH", File.ReadAllText(Path.Combine(Replica, "a")));
        Assert.Equal((Generation, 6ul), cuts.LastApplied);
    }

    [Fact]
    public void A_small_change_to_a_large_file_is_written_in_place_and_the_mode_and_owner_stay()
    {
        Directory.CreateDirectory(Replica);
        var path = Path.Combine(Replica, "db");
        var content = new byte[1 << 20];
        Random.Shared.NextBytes(content);
        File.WriteAllBytes(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        // The file opened before: it sees what is written into the file, not a new version renamed over it.
        using var opened = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        byte[] SeenThroughOpened()
        {
            var bytes = new byte[content.Length];
            Assert.Equal(bytes.Length, RandomAccess.Read(opened, bytes, 0));
            return bytes;
        }

        var cuts = new CutApplier(Replica, State);

        var page = new byte[4096];
        Random.Shared.NextBytes(page);
        cuts.ApplyCut([new WriteRecord(1, Generation, "db", (ulong)content.Length, 4096, [new BlockChange(7, page)]), new CutRecord(2, Generation)]);

        page.CopyTo(content, 7 * 4096);
        Assert.Equal(content, File.ReadAllBytes(path));
        // The same file, not a new version copied whole: a database's page writes must not copy the database.
        Assert.Equal(content, SeenThroughOpened());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(path));
        Assert.Empty(Directory.GetFiles(Path.Combine(State, "staging")));

        // A file with a second name (a diverged replica's copy kept aside is hard-linked) is never written in place:
        // the other name keeps what it held.
        var link = Path.Combine(_directory.Path, "db.link");
        LinkTo(path, link);
        Random.Shared.NextBytes(page);
        cuts.ApplyCut([new WriteRecord(3, Generation, "db", (ulong)content.Length, 4096, [new BlockChange(9, page)]), new CutRecord(4, Generation)]);
        var before = (byte[])content.Clone();
        page.CopyTo(content, 9 * 4096);
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal(before, File.ReadAllBytes(link));
        File.Delete(link);

        // A large rewrite is still a new version, installed whole.
        var rewrite = new byte[content.Length];
        Random.Shared.NextBytes(rewrite);
        cuts.ApplyCut([new WriteRecord(5, Generation, "db", (ulong)rewrite.Length, rewrite.Length, [new BlockChange(0, rewrite)]), new CutRecord(6, Generation)]);
        Assert.Equal(rewrite, File.ReadAllBytes(path));
        // The file opened at the start still holds the version before the second name's write: replaced since.
        Assert.NotEqual(rewrite, SeenThroughOpened());
    }

    [Fact]
    public void A_mode_narrowed_then_a_write_in_one_cut_keeps_the_narrower_mode_and_each_version_takes_the_actives_time()
    {
        // A secret's mode narrowed and then written, within one cut: the new version was built from the replica's
        // file before the mode's step had run, and the install put the old mode back (a world-readable secret on
        // the standby) until 2026-12-02.
        Directory.CreateDirectory(Replica);
        var small = Path.Combine(Replica, "secret");
        File.WriteAllText(small, "old");
        File.SetUnixFileMode(small, (UnixFileMode)0b110_100_100);
        var large = Path.Combine(Replica, "db");
        var content = new byte[1 << 20];
        Random.Shared.NextBytes(content);
        File.WriteAllBytes(large, content);
        File.SetUnixFileMode(large, (UnixFileMode)0b110_100_100);
        var cuts = new CutApplier(Replica, State);
        const long Touched = 1_796_000_000_000_000_001;
        const long Written = 1_796_042_096_123_456_789;
        var page = new byte[4096];
        cuts.ApplyCut(
        [
            new AttributesRecord(1, Generation, "secret", 0b110_000_000, 0, 0, Touched),
            new WriteRecord(2, Generation, "secret", 3, 4096, [new BlockChange(0, "new"u8.ToArray())], Written),
            // The large file's small change is written in place, after its mode's step.
            new AttributesRecord(3, Generation, "db", 0b110_000_000, 0, 0, Touched),
            new WriteRecord(4, Generation, "db", (ulong)content.Length, 4096, [new BlockChange(3, page)], Written + 1),
            // A new empty file keeps the active's time too.
            new CreateRecord(5, Generation, "empty", 0b110_100_100, Modified: Written + 2),
            new CutRecord(6, Generation),
        ]);

        Assert.Equal("new", File.ReadAllText(small));
        Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(small));
        Assert.Equal(Written, FileStatus.Of(small)!.Value.ModifiedNanoseconds);
        Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(large));
        Assert.Equal(Written + 1, FileStatus.Of(large)!.Value.ModifiedNanoseconds);
        Assert.Equal(Written + 2, FileStatus.Of(Path.Combine(Replica, "empty"))!.Value.ModifiedNanoseconds);

        // Renamed, then written within one cut: the mode given before the rename follows the file.
        cuts.ApplyCut(
        [
            new AttributesRecord(7, Generation, "secret", 0b100_000_000, 0, 0, Touched),
            new RenameRecord(8, Generation, "secret", "moved"),
            new WriteRecord(9, Generation, "moved", 4, 4096, [new BlockChange(0, "next"u8.ToArray())], Written + 3),
            new CutRecord(10, Generation),
        ]);
        var moved = Path.Combine(Replica, "moved");
        Assert.Equal("next", File.ReadAllText(moved));
        Assert.Equal((UnixFileMode)0b100_000_000, File.GetUnixFileMode(moved));
        Assert.Equal(Written + 3, FileStatus.Of(moved)!.Value.ModifiedNanoseconds);
        // A time alone (touch) is no record step: the redo log names it as a step carried out again safely.
        cuts.ApplyCut([new AttributesRecord(11, Generation, "moved", 0b100_000_000, 0, 0, Touched), new CutRecord(12, Generation)]);
        Assert.Equal(Touched, FileStatus.Of(moved)!.Value.ModifiedNanoseconds);
        Assert.StartsWith("attributes ", File.ReadAllLines(Path.Combine(State, "redo.log"))[1], StringComparison.Ordinal);

        // Created, its time and mode set again (a writer's ftruncate, a chmod), then written, in one cut: the staged
        // version takes the mode, and the write's time is the last (a step after its install put the earlier back).
        cuts.ApplyCut(
        [
            new CreateRecord(13, Generation, "fresh", 0b110_100_100, Modified: Written),
            new AttributesRecord(14, Generation, "fresh", 0b110_100_000, 0, 0, Written + 5),
            new WriteRecord(15, Generation, "fresh", 3, 4096, [new BlockChange(0, "abc"u8.ToArray())], Written + 6),
            new CutRecord(16, Generation),
        ]);
        var fresh = Path.Combine(Replica, "fresh");
        Assert.Equal("abc", File.ReadAllText(fresh));
        Assert.Equal((UnixFileMode)0b110_100_000, File.GetUnixFileMode(fresh));
        Assert.Equal(Written + 6, FileStatus.Of(fresh)!.Value.ModifiedNanoseconds);
    }

    [Fact]
    public void A_file_patched_in_place_earlier_in_the_cut_is_what_a_rename_and_a_later_write_build_on()
    {
        Directory.CreateDirectory(Replica);
        var content = new byte[64 << 10];
        Random.Shared.NextBytes(content);
        File.WriteAllBytes(Path.Combine(Replica, "a"), content);
        File.WriteAllBytes(Path.Combine(Replica, "b"), content);
        var cuts = new CutApplier(Replica, State);
        byte[] Page(byte value) => Enumerable.Repeat(value, 4096).ToArray();

        cuts.ApplyCut(
        [
            // "a": patched, renamed, then written again under its new name: the last write builds on the patched file.
            new WriteRecord(1, Generation, "a", (ulong)content.Length, 4096, [new BlockChange(0, Page(1))]),
            new RenameRecord(2, Generation, "a", "c"),
            new WriteRecord(3, Generation, "c", (ulong)content.Length, 4096, [new BlockChange(2, Page(3))]),
            // "b": patched, then rewritten whole in the same run of steps: the patch gives way to the new version.
            new WriteRecord(4, Generation, "b", (ulong)content.Length, 4096, [new BlockChange(1, Page(4))]),
            new WriteRecord(5, Generation, "b", 4096, 4096, [new BlockChange(0, Page(5))]),
            new CutRecord(6, Generation),
        ]);

        var expected = (byte[])content.Clone();
        Page(1).CopyTo(expected, 0);
        Page(3).CopyTo(expected, 2 * 4096);
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(Replica, "c")));
        Assert.False(File.Exists(Path.Combine(Replica, "a")));
        Assert.Equal(Page(5), File.ReadAllBytes(Path.Combine(Replica, "b")));
    }

    private static void LinkTo(string path, string link)
    {
        using var ln = System.Diagnostics.Process.Start("ln", [path, link]);
        ln.WaitForExit();
        Assert.Equal(0, ln.ExitCode);
    }

    [Fact]
    public void An_installed_cut_is_visible_and_survives_a_crash_before_it_is_finished()
    {
        Directory.CreateDirectory(Replica);
        var cuts = new CutApplier(Replica, State);
        cuts.ApplyCut([new CreateRecord(1, Generation, "a", 0b110_000_000), new CutRecord(2, Generation)]);

        using (var staged = cuts.Begin())
        {
            staged.Add(new WriteRecord(3, Generation, "a", 5, 4096, [new BlockChange(0, "after"u8.ToArray())]));
            staged.Add(new CutRecord(4, Generation));
            // What the receiver acknowledges: the cut durable and visible, its position not recorded yet.
            staged.Install();
            Assert.Equal("after", File.ReadAllText(Path.Combine(Replica, "a")));
            Assert.Equal((Generation, 2ul), cuts.LastApplied);
            Assert.Throws<InvalidOperationException>(() => staged.Add(new CutRecord(5, Generation)));
            // The process dies here: disposed without being applied, the installed cut is kept for the recovery.
        }

        var next = new CutApplier(Replica, State);
        Assert.Equal((Generation, 2ul), next.LastApplied);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: cut 4 finished (all 1 of its steps were carried out; its position is recorded now)", next.Recover());
        Assert.Equal((Generation, 4ul), next.LastApplied);
        Assert.Equal("after", File.ReadAllText(Path.Combine(Replica, "a")));
        next.ApplyCut([new CutRecord(5, Generation)]);
        Assert.Equal((Generation, 5ul), new CutApplier(Replica, State).LastApplied);
    }

    /// <summary>A redo log as the applier writes it: "cut2 SEQ GEN NODE LENGTH CRC", the steps, "end".</summary>
    private void WriteLog(ulong sequence, string steps, string after = "")
    {
        var body = System.Text.Encoding.UTF8.GetBytes($"{steps}\nend\n");
        var crc = System.IO.Hashing.Crc32.HashToUInt32(body);
        File.WriteAllText(Path.Combine(State, "redo.log"), $"cut2 {sequence} 1 1 {body.Length} {crc:x8}\n{System.Text.Encoding.UTF8.GetString(body)}{after}");
    }

    [Fact]
    public void A_redo_log_torn_while_written_is_discarded_and_done_lines_of_another_cut_never_count()
    {
        var cuts = new CutApplier(Replica, State);
        cuts.ApplyCut([new CreateRecord(1, Generation, "a", 0b110_000_000), new CutRecord(2, Generation)]);
        var install = $"install 4.0 {Convert.ToBase64String("b"u8)}";

        // Torn: the steps shorter than the first line says (a crash while the log was written over the last one).
        File.WriteAllText(Path.Combine(State, "staging", "4.0"), "staged");
        WriteLog(4, install);
        var torn = File.ReadAllBytes(Path.Combine(State, "redo.log"));
        File.WriteAllBytes(Path.Combine(State, "redo.log"), torn[..^3]);
        var next = new CutApplier(Replica, State);
        Assert.Throws<InvalidOperationException>(next.Begin);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: an unfinished log discarded: the replica stays at the cut before", next.Recover());
        Assert.False(File.Exists(Path.Combine(Replica, "b")));
        Assert.Equal((Generation, 2ul), next.LastApplied);

        // Whole, followed by "done" lines an earlier, longer log left (its shortening did not reach the disk): they
        // name another cut, so the step is carried out, not skipped.
        File.WriteAllText(Path.Combine(State, "staging", "4.0"), "staged");
        WriteLog(4, install, after: "done 2 1 1 0\ndone 0\n");
        next = new CutApplier(Replica, State);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: cut 4 finished from step 1 of 1", next.Recover());
        Assert.Equal("staged", File.ReadAllText(Path.Combine(Replica, "b")));
        Assert.Equal((Generation, 4ul), new CutApplier(Replica, State).LastApplied);
    }

    [Fact]
    public void A_position_torn_while_written_leaves_the_one_before_and_the_redo_log_records_it_again()
    {
        var cuts = new CutApplier(Replica, State);
        cuts.ApplyCut([new CreateRecord(1, Generation, "a", 0b110_000_000), new CutRecord(2, Generation)]);
        cuts.ApplyCut([new CreateRecord(3, Generation, "b", 0b110_000_000), new CutRecord(4, Generation)]);
        var position = Path.Combine(State, "position");
        var slots = File.ReadAllBytes(position);
        Assert.Equal(128, slots.Length);

        // The slot written last (cut 4's) damaged: cut 2 is read, and the redo log (cut 4's, done) records cut 4 again.
        var latest = System.Text.Encoding.ASCII.GetString(slots, 0, 64).Contains(" 4 1 1 ", StringComparison.Ordinal) ? 0 : 64;
        slots[latest + 20] ^= 0x01;
        File.WriteAllBytes(position, slots);
        var next = new CutApplier(Replica, State);
        Assert.Equal((Generation, 2ul), next.LastApplied);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: cut 4 finished (all 1 of its steps were carried out; its position is recorded now)", next.Recover());
        Assert.Equal((Generation, 4ul), new CutApplier(Replica, State).LastApplied);

        // Both slots damaged: the position is unknown, said, never guessed.
        File.WriteAllBytes(position, new byte[128]);
        var unknown = Assert.Throws<InvalidDataException>(() => new CutApplier(Replica, State));
        Assert.Contains("a full resync must rebuild it", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_patch_step_of_the_earlier_kind_a_staged_record_file_of_its_own_is_still_carried_out()
    {
        var cuts = new CutApplier(Replica, State);
        cuts.ApplyCut([new CreateRecord(1, Generation, "db", 0b110_000_000), new WriteRecord(2, Generation, "db", 8192, 4096, [new BlockChange(0, new byte[4096]), new BlockChange(1, new byte[4096])]), new CutRecord(3, Generation)]);
        // A crash left a cut whose patch was staged the former way (one file per record) and not carried out.
        File.WriteAllBytes(Path.Combine(State, "staging", "4.0"), JournalCodec.Encode(new WriteRecord(4, Generation, "db", 8192, 4096, [new BlockChange(1, "page"u8.ToArray())])));
        WriteLog(5, $"patch 4.0 {Convert.ToBase64String("db"u8)}");

        var next = new CutApplier(Replica, State);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: cut 5 finished from step 1 of 1", next.Recover());
        var db = File.ReadAllBytes(Path.Combine(Replica, "db"));
        Assert.Equal(8192, db.Length);
        Assert.Equal("page"u8.ToArray(), db[4096..4100]);
    }

    [Fact]
    public void The_position_file_of_the_earlier_format_is_read_and_replaced()
    {
        Directory.CreateDirectory(State);
        File.WriteAllText(Path.Combine(State, "applied"), "2 1 1\n");
        var cuts = new CutApplier(Replica, State);
        Assert.Equal((Generation, 2ul), cuts.LastApplied);

        cuts.ApplyCut([new CreateRecord(3, Generation, "a", 0b110_000_000), new CutRecord(4, Generation)]);
        Assert.False(File.Exists(Path.Combine(State, "applied")));
        Assert.Equal((Generation, 4ul), new CutApplier(Replica, State).LastApplied);
    }

    [Fact]
    public async Task A_version_of_a_file_on_another_filesystem_is_staged_on_it_and_renamed_into_place_never_copied()
    {
        // The replica's members span two filesystems (a data directory mounted apart, the state directory on the
        // disk): a staged file moved to another filesystem would be copied then deleted, torn by a crash between.
        Directory.CreateDirectory(Path.Combine(Replica, "etc"));
        await using var mount = await TmpfsMount.MountAsync(Path.Combine(Replica, "srv", "data"));
        File.WriteAllText(Path.Combine(Replica, "srv/data/orders"), "old");
        var scope = ReplicatedScope.Of(Replica, ["srv/data", "etc/hosts"]);
        var cuts = new CutApplier(scope, State);
        var area = Path.Combine(Replica, "srv/data", ReplicatedScope.StagingAreaName);
        Assert.True(Directory.Exists(area), "no staging area at the top of the mounted filesystem");
        Assert.Equal([area], File.ReadAllLines(Path.Combine(State, "areas")));
        Assert.False(scope.Replicates($"srv/data/{ReplicatedScope.StagingAreaName}/1.0"));

        using (var staged = cuts.Begin())
        {
            staged.Add(new WriteRecord(1, Generation, "srv/data/orders", 11, 4096, [new BlockChange(0, "new version"u8.ToArray())]));
            staged.Add(new WriteRecord(2, Generation, "etc/hosts", 5, 4096, [new BlockChange(0, "hosts"u8.ToArray())]));
            staged.Add(new CutRecord(3, Generation));
            var onMount = Assert.Single(Directory.GetFiles(area));
            // The staged inode, held open: written through after the apply, the replica's file shows it only if it
            // is that inode (renamed), not a copy.
            using var held = File.OpenHandle(onMount, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            staged.Apply();
            RandomAccess.Write(held, "N"u8, 0);
        }

        Assert.Equal("New version", File.ReadAllText(Path.Combine(Replica, "srv/data/orders")));
        Assert.Equal("hosts", File.ReadAllText(Path.Combine(Replica, "etc/hosts")));
        Assert.Empty(Directory.GetFiles(area));

        // A crash left a cut whose staged file is in that area: the recovery finds it by the path its log names.
        File.WriteAllText(Path.Combine(area, "5.0"), "recovered");
        File.WriteAllText(Path.Combine(State, "redo.log"),
            $"cut 5 1 1\ninstall @{Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(Path.Combine(area, "5.0")))} {Convert.ToBase64String("srv/data/orders"u8)}\nend\n");
        var restarted = new CutApplier(scope, State);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: cut 5 finished from step 1 of 1", restarted.Recover());
        Assert.Equal("recovered", File.ReadAllText(Path.Combine(Replica, "srv/data/orders")));
    }

    [Fact]
    public void A_cut_left_unfinished_must_be_recovered_before_the_next_one_is_applied()
    {
        var cuts = new CutApplier(Replica, State);
        cuts.ApplyCut([new CreateRecord(1, Generation, "a", 0b110_000_000), new CutRecord(2, Generation)]);
        // A crash before any step of the next cut was carried out: its log is whole, its staged file there.
        File.WriteAllText(Path.Combine(State, "staging", "4.0"), "staged");
        File.WriteAllText(Path.Combine(State, "redo.log"), $"cut 4 1 1\ninstall 4.0 {Convert.ToBase64String("b"u8)}\nend\n");

        var next = new CutApplier(Replica, State);
        var refused = Assert.Throws<InvalidOperationException>(() => next.ApplyCut([new CutRecord(5, Generation)]));
        Assert.Contains("a cut is unfinished", refused.Message, StringComparison.Ordinal);
        Assert.Equal($"{Path.Combine(State, "redo.log")}: cut 4 finished from step 1 of 1", next.Recover());
        Assert.Equal("staged", File.ReadAllText(Path.Combine(Replica, "b")));
        next.ApplyCut([new CutRecord(5, Generation)]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_cut_applier_killed_at_random_moments_then_recovered_leaves_every_file_at_the_same_cut(bool receiveLog)
    {
        // With the receive log, a cut is reported (acknowledged) once durable in the log, before it is applied: the
        // recovery must apply it, so the replica is never before a cut reported.
        const int Files = 4;
        var random = new Random();
        var finished = 0;
        for (var trial = 0; trial < 30; trial++)
        {
            var replica = Path.Combine(_directory.Path, $"trial{trial}", "replica");
            var state = Path.Combine(_directory.Path, $"trial{trial}", "state");
            var reported = 0;
            await KilledWorker.RunAsync([replica, Files.ToString(System.Globalization.CultureInfo.InvariantCulture), state, .. receiveLog ? new[] { "received" } : []],
                line => Volatile.Write(ref reported, int.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)), lines: 1, maxDelayMs: 200, random);

            var recovery = new CutApplier(replica, state).Recover();
            if (recovery is not null && recovery.Contains(receiveLog ? "acknowledged cut" : "finished", StringComparison.Ordinal))
            {
                finished++;
            }

            // Every file at cut c, the same c for all, and c is the cut last reported or the next one.
            var contents = Enumerable.Range(0, Files).Select(f => File.ReadAllBytes(Path.Combine(replica, FileVersions.Name(f)))).ToArray();
            var cutsSeen = new[] { reported, reported + 1 }
                .Where(cut => Enumerable.Range(0, Files).All(f => FileVersions.At(f, cut, 4096).AsSpan().SequenceEqual(contents[f]))).ToList();
            Assert.True(cutsSeen.Count == 1, $"trial {trial}: the files are not all at cut {reported} or all at cut {reported + 1} (recovery: {recovery ?? "nothing to do"})");
        }

        // Some kills must have landed inside a cut's installation (after its acknowledgement) for the recovery to have
        // been tested.
        Assert.True(finished > 0, "no kill came while a cut was being installed: the recovery was never exercised");
    }
}
