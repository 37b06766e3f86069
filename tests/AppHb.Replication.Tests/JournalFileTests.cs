using AppHb.Core.Cluster;
using AppHb.Replication.Journal;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The journal file on a real filesystem: records come back in order after a reopen; an end torn by a crash
/// is cut off at the last whole record, said, and appending goes on from there.</summary>
public sealed class JournalFileTests : IDisposable
{
    private static readonly DataGeneration Generation = new(7, 2);
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static JournalRecord Record(ulong sequence) => (sequence % 3) switch
    {
        0 => new WriteRecord(sequence, Generation, $"data/f{sequence % 5}", 10_000, 4096, [new BlockChange(1, new byte[sequence % 4096 + 1])]),
        1 => new RenameRecord(sequence, Generation, $"data/t{sequence}", $"data/f{sequence % 5}"),
        _ => new CutRecord(sequence, Generation),
    };

    /// <summary>The sender reads whole batches only: a cut published (before its sync, so that the peer receives it
    /// meanwhile) or synced, never records still being appended. A published record the peer holds and a power cut
    /// took from this journal leaves the peer ahead, which the next connection resyncs (the journal's numbers no longer
    /// continue the peer's position) or a takeover makes moot.</summary>
    [Fact]
    public void Records_appended_but_not_yet_published_are_not_read_and_reads_start_at_the_first_needed()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        for (ulong i = 1; i <= 10; i++)
        {
            journal.Append(Record(i));
        }

        journal.Sync();
        journal.Append(Record(11));
        Assert.Equal(Enumerable.Range(8, 3).Select(i => (ulong)i), journal.ReadAfter(7).Select(r => r.Sequence));
        Assert.Empty(journal.ReadAfter(10));
        journal.Sync();
        Assert.Equal([11UL], journal.ReadAfter(10).Select(r => r.Sequence));
        Assert.Empty(journal.ReadAfter(11));

        journal.Append(Record(12));
        journal.Append(Record(13));
        Assert.Empty(journal.ReadEncodedAfter(11, 0));
        journal.Publish();
        Assert.Equal([12UL, 13UL], journal.ReadAfter(11).Select(r => r.Sequence));
        var encoded = journal.ReadEncodedAfter(11, 0).ToList();
        Assert.Equal([12UL, 13UL], encoded.Select(r => r.Sequence));
        encoded.ForEach(r => r.Return());
        journal.Append(Record(14));
        Assert.Equal([12UL, 13UL], journal.ReadAfter(11).Select(r => r.Sequence));
        journal.Sync();
        Assert.Equal([12UL, 13UL, 14UL], journal.ReadAfter(11).Select(r => r.Sequence));
    }

    /// <summary>What the sender sends: the journal's own bytes of each durable record after the headroom asked for,
    /// the same as the record encoded again, and nothing appended but not yet synced.</summary>
    [Fact]
    public void Records_read_as_bytes_are_the_records_encoding_after_the_headroom_and_only_the_durable_ones()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        for (ulong i = 1; i <= 10; i++)
        {
            journal.Append(Record(i));
        }

        journal.Sync();
        journal.Append(Record(11));
        var read = journal.ReadEncodedAfter(6, headroom: 3).ToList();
        try
        {
            Assert.Equal(Enumerable.Range(7, 4).Select(i => (ulong)i), read.Select(r => r.Sequence));
            foreach (var encoded in read)
            {
                var record = Record(encoded.Sequence);
                Assert.Equal(record.Kind, encoded.Kind);
                Assert.Equal(JournalCodec.Encode(record), encoded.Rented.AsSpan(3, encoded.Length - 3).ToArray());
            }
        }
        finally
        {
            read.ForEach(r => r.Return());
        }

        Assert.Empty(journal.ReadEncodedAfter(10, headroom: 1));
    }

    /// <summary>A record damaged on the disk after the journal was opened is found by its checksum when the sender
    /// reads it (the sender then ends the connection and the replica is resynced), never sent.</summary>
    [Fact]
    public void A_record_damaged_after_opening_is_refused_when_read_as_bytes_naming_its_offset()
    {
        var path = _directory.File("journal");
        using var journal = JournalFile.Open(path);
        for (ulong i = 1; i <= 4; i++)
        {
            journal.Append(Record(i));
        }

        journal.Sync();
        var third = journal.ReadAfter(0).Take(2).Sum(r => JournalCodec.Encode(r).Length);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            file.Position = third + 10;
            file.WriteByte(0xff);
        }

        var read = new List<ulong>();
        var damaged = Assert.Throws<InvalidDataException>(() =>
        {
            foreach (var encoded in journal.ReadEncodedAfter(0, headroom: 1))
            {
                read.Add(encoded.Sequence);
                encoded.Return();
            }
        });
        Assert.Equal([1UL, 2UL], read);
        Assert.Contains($"at offset {third}: corrupt record", damaged.Message, StringComparison.Ordinal);
    }

    /// <summary>The size limit: the journal starts again with what the peer still needs (or its last record alone),
    /// numbering goes on, a reader already open finishes from the replaced file, and a reopen finds the same.</summary>
    [Fact]
    public void A_restart_keeps_the_records_after_the_point_given_and_numbering_goes_on()
    {
        var path = _directory.File("journal");
        using (var journal = JournalFile.Open(path))
        {
            for (ulong i = 1; i <= 30; i++)
            {
                journal.Append(Record(i));
            }

            journal.Sync();
            using var reading = journal.ReadAfter(0).GetEnumerator();
            Assert.True(reading.MoveNext());
            var bytesAfter24 = journal.BytesAfter(24);
            Assert.Equal(25UL, journal.Restart(keepAfter: 24));
            Assert.Equal(bytesAfter24, journal.Length);
            Assert.Equal(Enumerable.Range(25, 6).Select(i => (ulong)i), journal.ReadAfter(0).Select(r => r.Sequence));
            var rest = new List<ulong>();
            while (reading.MoveNext())
            {
                rest.Add(reading.Current.Sequence);
            }

            Assert.Equal(Enumerable.Range(2, 29).Select(i => (ulong)i), rest);
            journal.Append(Record(31));
            journal.Sync();
            Assert.Equal(31UL, journal.Restart());
            Assert.Equal([31UL], journal.ReadAfter(0).Select(r => r.Sequence));
        }

        using var reopened = JournalFile.Open(path);
        Assert.Equal((31UL, 1L, (string?)null), (reopened.LastSequence, reopened.Records, reopened.Recovery));
    }

    [Fact]
    public void Records_appended_and_synced_come_back_in_order_after_a_reopen()
    {
        var path = _directory.File("journal");
        using (var journal = JournalFile.Open(path))
        {
            for (ulong i = 1; i <= 300; i++)
            {
                journal.Append(Record(i));
            }

            journal.Sync();
            Assert.Equal(Enumerable.Range(101, 200).Select(i => (ulong)i), journal.ReadAfter(100).Select(r => r.Sequence));
        }

        using var reopened = JournalFile.Open(path);
        Assert.Equal((300UL, 300L, (string?)null), (reopened.LastSequence, reopened.Records, reopened.Recovery));
        Assert.Equal(Enumerable.Range(1, 300).Select(i => (ulong)i), reopened.ReadAfter(0).Select(r => r.Sequence));
        Assert.Throws<ArgumentException>(() => reopened.Append(Record(300)));
    }

    [Fact]
    public void An_end_torn_anywhere_in_the_last_record_is_cut_off_and_appending_goes_on()
    {
        var path = _directory.File("journal");
        using (var journal = JournalFile.Open(path))
        {
            for (ulong i = 1; i <= 10; i++)
            {
                journal.Append(Record(i));
            }

            journal.Sync();
        }

        // The records, without the zeros written ahead of them.
        var whole = File.ReadAllBytes(path).AsSpan(0, Enumerable.Range(1, 10).Sum(i => JournalCodec.Encode(Record((ulong)i)).Length)).ToArray();
        var lastStart = whole.Length - JournalCodec.Encode(Record(10)).Length;
        for (var cut = lastStart + 1; cut < whole.Length; cut += Math.Max(1, (whole.Length - lastStart) / 37))
        {
            File.WriteAllBytes(path, whole.AsSpan(0, cut).ToArray());
            using var journal = JournalFile.Open(path);
            Assert.Equal(9UL, journal.LastSequence);
            if (whole.AsSpan(lastStart, cut - lastStart).ContainsAnyExcept((byte)0))
            {
                Assert.Contains($"{cut - lastStart} bytes at offset {lastStart} after record 9 cut off (incomplete", journal.Recovery, StringComparison.Ordinal);
            }
            else
            {
                // Only its length's first bytes, zeros, reached the disk: the same as the zeros written ahead of the
                // records (nothing of the record is there to speak of), cut off all the same.
                Assert.Null(journal.Recovery);
            }

            Assert.Equal(lastStart, new FileInfo(path).Length);

            journal.Append(Record(10));
            journal.Sync();
            Assert.Equal(Enumerable.Range(1, 10).Select(i => (ulong)i), journal.ReadAfter(0).Select(r => r.Sequence));
        }
    }

    [Fact]
    public void A_damaged_end_is_cut_off_too_and_said_to_be_corrupt()
    {
        var path = _directory.File("journal");
        using (var journal = JournalFile.Open(path))
        {
            journal.Append(Record(1));
            journal.Append(Record(2));
            journal.Sync();
        }

        var bytes = File.ReadAllBytes(path);
        bytes[JournalCodec.Encode(Record(1)).Length + JournalCodec.Encode(Record(2)).Length - 3] ^= 0x40;
        File.WriteAllBytes(path, bytes);

        using var reopened = JournalFile.Open(path);
        Assert.Equal(1UL, reopened.LastSequence);
        Assert.Contains("(corrupt: the record's CRC-32 does not match its bytes)", reopened.Recovery, StringComparison.Ordinal);
    }

    [Fact]
    public void A_small_batch_overwrites_zeros_written_ahead_so_the_file_keeps_its_size_and_they_are_no_torn_end()
    {
        var path = _directory.File("journal");
        long records;
        using (var journal = JournalFile.Open(path))
        {
            journal.Append(Record(1));
            journal.Sync();
            records = journal.Length;
            var size = new FileInfo(path).Length;
            Assert.Equal(records + JournalFile.ZerosAhead, size);
            for (ulong i = 2; i <= 20; i++)
            {
                journal.Append(Record(i));
                journal.Sync();
            }

            // Written over the zeros: the file's size (metadata an fdatasync would have to commit) never changed.
            Assert.Equal(size, new FileInfo(path).Length);
            records = journal.Length;
            Assert.Equal(20, journal.ReadAfter(0).Count());
            Assert.Equal(records - JournalCodec.Encode(Record(1)).Length, journal.BytesAfter(1));
        }

        using var reopened = JournalFile.Open(path);
        Assert.Equal((20UL, 20L, (string?)null), (reopened.LastSequence, reopened.Records, reopened.Recovery));
        Assert.Equal(records, reopened.Length);
        reopened.Append(Record(21));
        reopened.Sync();
        Assert.Equal(Enumerable.Range(1, 21).Select(i => (ulong)i), reopened.ReadAfter(0).Select(r => r.Sequence));
    }

    [Fact]
    public void Batches_synced_behind_are_readable_at_once_over_the_zeros_ahead_and_a_restart_waits_for_their_syncs()
    {
        var path = _directory.File("journal");
        using (var journal = JournalFile.Open(path))
        {
            for (ulong i = 1; i <= 50; i++)
            {
                journal.Append(Record(i));
                journal.SyncBehind();
                // Readable before its sync ends: the sender reads it while the disk writes it.
                Assert.Equal(i, journal.ReadAfter(i - 1).Single().Sequence);
            }

            // Zeros written ahead by the first batch, overwritten by the others: the size never changed.
            Assert.Equal(JournalCodec.Encode(Record(1)).Length + JournalFile.ZerosAhead, new FileInfo(path).Length);
            Assert.Equal(41UL, journal.Restart(keepAfter: 40));
            journal.Append(Record(51));
            journal.SyncBehind();
        }

        using var reopened = JournalFile.Open(path);
        Assert.Equal((51UL, 11L, (string?)null), (reopened.LastSequence, reopened.Records, reopened.Recovery));
        Assert.Equal(Enumerable.Range(41, 11).Select(i => (ulong)i), reopened.ReadAfter(0).Select(r => r.Sequence));
    }

    [Fact]
    public void A_large_batch_is_appended_without_zeros_ahead_published_first_or_not()
    {
        var path = _directory.File("journal");
        using var journal = JournalFile.Open(path);
        var block = new byte[40_000];
        foreach (var publishFirst in new[] { false, true })
        {
            // Two records of 40 KB: past the 64 KiB of a small batch (a bulk copy's), so no zeros written ahead.
            var first = journal.LastSequence + 1;
            journal.Append(new WriteRecord(first, Generation, "data/big", 80_000, 40_000, [new BlockChange(0, block)]));
            journal.Append(new WriteRecord(first + 1, Generation, "data/big", 80_000, 40_000, [new BlockChange(1, block)]));
            if (publishFirst)
            {
                journal.Publish();
            }

            journal.Sync();
            Assert.Equal(journal.Length, new FileInfo(path).Length);
        }
    }

    [Fact]
    public void A_record_torn_inside_the_zeros_written_ahead_is_a_torn_end_all_the_same()
    {
        var path = _directory.File("journal");
        using (var journal = JournalFile.Open(path))
        {
            journal.Append(Record(1));
            journal.Sync();
        }

        // Record 2's first bytes reached the disk over the zeros, its end did not.
        var second = JournalCodec.Encode(Record(2));
        using (var file = File.OpenHandle(path, FileMode.Open, FileAccess.Write))
        {
            RandomAccess.Write(file, second.AsSpan(0, second.Length / 2), JournalCodec.Encode(Record(1)).Length);
        }

        using var reopened = JournalFile.Open(path);
        Assert.Equal(1UL, reopened.LastSequence);
        Assert.Contains("after record 1 cut off", reopened.Recovery, StringComparison.Ordinal);
    }
}
