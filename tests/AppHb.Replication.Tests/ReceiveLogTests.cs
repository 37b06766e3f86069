using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Journal;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The standby's receive log: a group of cuts made durable in place before it is acknowledged, read back
/// after a crash only as whole cuts that follow on from the replica's position.</summary>
public sealed class ReceiveLogTests : IDisposable
{
    private static readonly DataGeneration Generation = new(2, 1);
    private readonly TempDirectory _directory = new();

    public ReceiveLogTests() => Directory.CreateDirectory(State);

    public void Dispose() => _directory.Dispose();

    private string State => Path.Combine(_directory.Path, "state");

    private string Replica => Path.Combine(_directory.Path, "replica");

    private string LogFile => Path.Combine(State, "received.log");

    private static List<JournalRecord> Cut(ulong first, string path, string content) =>
    [
        new CreateRecord(first, Generation, path, 0b110_100_100),
        new WriteRecord(first + 1, Generation, path, (ulong)content.Length, 4096, [new BlockChange(0, System.Text.Encoding.ASCII.GetBytes(content))]),
        new CutRecord(first + 2, Generation),
    ];

    [Fact]
    public void Only_whole_cuts_that_follow_the_position_on_are_read_back_and_the_file_never_changes_size()
    {
        using var log = ReceiveLog.Open(State);
        var size = new FileInfo(LogFile).Length;
        foreach (var record in Cut(11, "a", "one").Concat(Cut(14, "b", "two")).Append(new DeleteRecord(17, Generation, "a")))
        {
            log.Add(record);
        }

        Assert.Equal(16ul, log.Commit());
        Assert.Equal(size, new FileInfo(LogFile).Length);
        // The delete after the second cut has no cut of its own: not written, kept for the next group.
        Assert.Equal(Enumerable.Range(11, 6).Select(s => (ulong)s), log.CutsAfter(10).Select(r => r.Sequence));
        // Applied already, the first cut is passed over; a position the group does not continue gets nothing.
        Assert.Equal(Enumerable.Range(14, 3).Select(s => (ulong)s), log.CutsAfter(13).Select(r => r.Sequence));
        Assert.Empty(log.CutsAfter(16));
        Assert.Empty(log.CutsAfter(5));

        // Once applied, a shorter group is written over it (the delete kept, then a cut of its own): what is left of
        // the longer one after its end is never read.
        log.Applied(16);
        Cut(18, "c", "three").ForEach(log.Add);
        Assert.Equal(20ul, log.Commit());
        Assert.Equal(size, new FileInfo(LogFile).Length);
        Assert.Equal(Enumerable.Range(17, 4).Select(s => (ulong)s), log.CutsAfter(16).Select(r => r.Sequence));
        Assert.Empty(log.CutsAfter(13));
        // Nothing since: nothing to write.
        Assert.Null(log.Commit());
    }

    [Fact]
    public void A_group_torn_by_a_crash_gives_back_only_its_whole_cuts_before_the_tear()
    {
        using (var log = ReceiveLog.Open(State))
        {
            Cut(1, "a", "one").Concat(Cut(4, "b", "two")).ToList().ForEach(log.Add);
            Assert.Equal(6ul, log.Commit());
        }

        // The second cut's write record damaged (the disk wrote part of the group): its CRC-32 no longer matches.
        var bytes = File.ReadAllBytes(LogFile);
        var second = Cut(1, "a", "one").Sum(r => JournalCodec.Encode(r).Length) + JournalCodec.Encode(Cut(4, "b", "two")[0]).Length;
        bytes[second + 10] ^= 0xff;
        File.WriteAllBytes(LogFile, bytes);

        using var reopened = ReceiveLog.Open(State);
        Assert.Equal([1ul, 2ul, 3ul], reopened.CutsAfter(0).Select(r => r.Sequence));
    }

    [Fact]
    public void A_group_that_does_not_fit_is_not_committed_until_its_cuts_are_applied_and_then_dropped()
    {
        using var log = ReceiveLog.Open(State);
        var large = new string('x', 200_000);
        for (var i = 0; i < 6; i++)
        {
            log.Add(new WriteRecord((ulong)i + 1, Generation, "big", 200_000, 1 << 18, [new BlockChange(0, System.Text.Encoding.ASCII.GetBytes(large))]));
        }

        log.Add(new CutRecord(7, Generation));
        Assert.False(log.Holds);
        Assert.Null(log.Commit());

        // The cuts after it cannot be written either while it is not applied (the log would not hold what comes
        // between): they are acknowledged once applied.
        Cut(8, "a", "one").ForEach(log.Add);
        Assert.False(log.Holds);
        Assert.Null(log.Commit());
        Assert.Empty(log.CutsAfter(7));

        // Applied through cut 10: the group is dropped at the next cut's first record, and that cut is written.
        log.Applied(10);
        Cut(11, "b", "two").ForEach(log.Add);
        Assert.True(log.Holds);
        Assert.Equal(13ul, log.Commit());
        Assert.Equal(3, log.CutsAfter(10).Count);

        log.Bypass();
        Assert.False(log.Holds);
    }

    [Fact]
    public void Cuts_nobody_asked_to_write_are_dropped_once_applied()
    {
        using var log = ReceiveLog.Open(State);
        Cut(1, "a", "one").ForEach(log.Add);
        Cut(4, "b", "two").ForEach(log.Add);
        log.Applied(6);
        // Applied before anything asked for them: the next cut alone is written.
        Cut(7, "c", "three").ForEach(log.Add);
        Assert.Equal(9ul, log.Commit());
        Assert.Equal([7ul, 8ul, 9ul], log.CutsAfter(6).Select(r => r.Sequence));
        // Cuts 1 to 6 were never written: nothing follows on from an empty replica.
        Assert.Empty(log.CutsAfter(0));
    }

    [Fact]
    public void Groups_not_applied_yet_are_kept_and_the_next_goes_after_them_until_the_log_is_full()
    {
        using var log = ReceiveLog.Open(State);
        Cut(1, "a", "one").ForEach(log.Add);
        Assert.Equal(3ul, log.Commit());
        Cut(4, "b", "two").ForEach(log.Add);
        Assert.Equal(6ul, log.Commit());
        // Neither applied: both read back, in order.
        Assert.Equal(Enumerable.Range(1, 6).Select(s => (ulong)s), log.CutsAfter(0).Select(r => r.Sequence));
        log.Applied(3);
        Assert.Equal(Enumerable.Range(4, 3).Select(s => (ulong)s), log.CutsAfter(3).Select(r => r.Sequence));

        // Groups of ~0.9 MiB while nothing more is applied: the log's 4 MiB take four more, then refuse.
        ulong next = 7;
        var committed = 0;
        var content = System.Text.Encoding.ASCII.GetBytes(new string('y', 225_000));
        while (true)
        {
            for (var i = 0; i < 4; i++)
            {
                log.Add(new WriteRecord(next++, Generation, "c", (ulong)content.Length, 1 << 18, [new BlockChange(0, content)]));
            }

            log.Add(new CutRecord(next, Generation));
            if (log.Commit() != next++)
            {
                break;
            }

            committed++;
        }

        Assert.Equal(4, committed);
        Assert.Equal(next - 6, log.CutsAfter(3)[^1].Sequence);
    }

    [Fact]
    public void Forgotten_durably_the_log_holds_nothing_for_any_position()
    {
        using (var log = ReceiveLog.Open(State))
        {
            Cut(1, "a", "one").ForEach(log.Add);
            Assert.Equal(3ul, log.Commit());
            log.Forget();
        }

        using var reopened = ReceiveLog.Open(State);
        Assert.Empty(reopened.CutsAfter(0));
    }

    [Fact]
    public void A_cut_acknowledged_from_the_log_and_never_applied_is_applied_by_the_recovery_and_only_once()
    {
        Directory.CreateDirectory(Replica);
        var cuts = new CutApplier(Replica, State);
        cuts.ApplyCut(Cut(1, "a", "one"));
        using (var log = cuts.OpenReceiveLog())
        {
            // Durable in the log (so acknowledged), then the node stopped before the apply.
            log.Applied(3);
            Cut(4, "b", "two").Concat(Cut(7, "c", "three")).ToList().ForEach(log.Add);
            Assert.Equal(9ul, log.Commit());
        }

        var recovered = new CutApplier(Replica, State).Recover();
        Assert.Equal($"{LogFile}: 2 acknowledged cuts (records 4 to 9) applied", recovered);
        Assert.Equal("two", File.ReadAllText(Path.Combine(Replica, "b")));
        Assert.Equal("three", File.ReadAllText(Path.Combine(Replica, "c")));
        Assert.Equal((Generation, 9ul), new CutApplier(Replica, State).LastApplied);
        Assert.Null(new CutApplier(Replica, State).Recover());
    }
}
