using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using AppHb.Core.Cluster;
using AppHb.Replication.Journal;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Replication.Tests;

/// <summary>Journal records (docs/replication-design.md, "Journal record format"): golden bytes, round trips, and no
/// damaged or hostile record ever decoded as a record.</summary>
public class JournalCodecTests
{
    /// <summary>The example record of the design page, byte for byte.</summary>
    public static WriteRecord Example => new(42, new DataGeneration(3, 1), "db/main.db", 70_000, 65_536, [new BlockChange(1, "abcd"u8.ToArray())]);

    public const string ExampleHex =
        "0000003d" + "000000000000002a" + "0000000000000003" + "0001" + "01" + "000a" + "64622f6d61696e2e6462"
        + "0000000000011170" + "00010000" + "0001" + "00000001" + "00000004" + "61626364";

    [Fact]
    public void The_documented_write_record_encodes_to_its_golden_bytes_and_crc()
    {
        var bytes = JournalCodec.Encode(Example);
        Assert.Equal(ExampleHex, Convert.ToHexStringLower(bytes.AsSpan(0, bytes.Length - 4)));
        var crc = Convert.ToHexStringLower(bytes.AsSpan(bytes.Length - 4));
        var document = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "replication-design.md"));
        Assert.Contains(string.Join(' ', Enumerable.Range(0, ExampleHex.Length / 2).Select(i => ExampleHex.Substring(i * 2, 2))), document, StringComparison.Ordinal);
        Assert.Contains($"CRC-32 `{crc}`", document, StringComparison.Ordinal);
    }

    [Fact]
    public void A_write_records_modification_time_follows_its_blocks_and_a_record_without_it_stays_whole()
    {
        // 2026-11-30T12:34:56.123456789Z.
        var timed = JournalCodec.Encode(Example with { Modified = 1_796_042_096_123_456_789 });
        Assert.Equal("00000045" + ExampleHex[8..] + "18ecd2c545162d15", Convert.ToHexStringLower(timed.AsSpan(0, timed.Length - 4)));
        Assert.Equal(1_796_042_096_123_456_789, Assert.IsType<WriteRecord>(JournalCodec.Decode(timed).Record).Modified);
        Assert.Null(Assert.IsType<WriteRecord>(JournalCodec.Decode(JournalCodec.Encode(Example)).Record).Modified);
        // Anything but nothing or 8 bytes after the blocks is not a record.
        var odd = JournalCodec.Encode(Example with { Modified = 1 });
        var sevenBytes = new byte[odd.Length - 1];
        odd.AsSpan(0, odd.Length - 5).CopyTo(sevenBytes);
        BinaryPrimitives.WriteUInt32BigEndian(sevenBytes, (uint)(sevenBytes.Length - 4));
        BinaryPrimitives.WriteUInt32BigEndian(sevenBytes.AsSpan(sevenBytes.Length - 4), Crc32.HashToUInt32(sevenBytes.AsSpan(4, sevenBytes.Length - 8)));
        Assert.Equal(JournalDecodeStatus.Malformed, JournalCodec.Decode(sevenBytes).Status);
    }

    private static readonly Gen<string> Paths = Gen.Elements("a", "etc/apphb/apphbd.yaml", "data/x y/ünï", "d/e/f/g.bin", new string('n', 255));

    private static Gen<JournalRecord> Records() =>
        from sequence in ArbMap.Default.GeneratorFor<ulong>()
        from number in ArbMap.Default.GeneratorFor<ulong>()
        from node in ArbMap.Default.GeneratorFor<ushort>()
        from path in Paths
        from other in Paths
        from mode in ArbMap.Default.GeneratorFor<uint>()
        from time in ArbMap.Default.GeneratorFor<long>()
        from blockSize in Gen.Elements(1, 7, 4096, 65_536)
        from blocks in Gen.ListOf(Gen.Choose(0, 40)).Select(l => l.Distinct().Order().Take(8).ToArray())
        from kind in Gen.Choose(1, 8)
        let generation = new DataGeneration(number, node)
        let length = (ulong)((blocks.Length == 0 ? 0 : blocks[^1] + 1) * blockSize)
        select kind switch
        {
            1 => (JournalRecord)new WriteRecord(sequence, generation, path, length, blockSize,
                [.. blocks.Select(b => new BlockChange((uint)b, Enumerable.Range(0, blockSize).Select(i => unchecked((byte)(i * 31 + b))).ToArray()))],
                // The time is optional: with and without, a whole record.
                mode % 2 == 0 ? time : null),
            2 => new CreateRecord(sequence, generation, path, mode, mode ^ 7, mode ^ 9, mode % 3 == 0 ? null : time),
            3 => new DeleteRecord(sequence, generation, path),
            4 => new RenameRecord(sequence, generation, path, other),
            5 => new AttributesRecord(sequence, generation, path, mode, mode ^ 7, mode ^ 9, time),
            6 => new SymlinkRecord(sequence, generation, path, "../target " + other),
            7 => new DirectoryRecord(sequence, generation, path, mode),
            _ => new CutRecord(sequence, generation),
        };

    /// <summary>The standby decodes a received record without copying its blocks out of the message: they are the
    /// message's own bytes (a change to them shows in the block), and the record is the one a copying decode gives.</summary>
    [Fact]
    public void A_record_decoded_sharing_its_bytes_has_blocks_that_are_those_bytes_and_is_the_same_record()
    {
        var record = Example with { Length = 200_000, Blocks = [new BlockChange(0, new byte[] { 1, 2, 3 }), new BlockChange(2, new byte[] { 4, 5 })], Modified = 77 };
        var bytes = JournalCodec.Encode(record);
        var shared = Assert.IsType<WriteRecord>(JournalCodec.DecodeSharing(bytes).Record);
        Assert.True(SameRecord(JournalCodec.Decode(bytes).Record!, shared));
        Assert.True(SameRecord(record, shared));

        var at = bytes.AsSpan().IndexOf(new byte[] { 4, 5 });
        bytes[at] = 9;
        Assert.Equal(new byte[] { 9, 5 }, shared.Blocks[1].Content.ToArray());
    }

    private static bool SameRecord(JournalRecord a, JournalRecord b) => (a, b) switch
    {
        (WriteRecord x, WriteRecord y) => x.Sequence == y.Sequence && x.Generation == y.Generation && x.Path == y.Path && x.Length == y.Length
            && x.BlockSize == y.BlockSize && x.Blocks.Count == y.Blocks.Count && x.Modified == y.Modified
            && x.Blocks.Zip(y.Blocks).All(p => p.First.Index == p.Second.Index && p.First.Content.Span.SequenceEqual(p.Second.Content.Span)),
        _ => a == b,
    };

    [Fact]
    public void Every_kind_of_record_round_trips() => Check(Prop.ForAll(Arb.From(Records()), record =>
    {
        var bytes = JournalCodec.Encode(record);
        var decoded = JournalCodec.Decode(bytes);
        return decoded.Status == JournalDecodeStatus.Decoded && decoded.Consumed == bytes.Length && SameRecord(record, decoded.Record!);
    }));

    [Fact]
    public void A_record_cut_short_anywhere_is_incomplete_and_never_a_record() => Check(Prop.ForAll(Arb.From(Records()), record =>
    {
        var bytes = JournalCodec.Encode(record);
        return Enumerable.Range(0, bytes.Length).All(n => JournalCodec.Decode(bytes.AsSpan(0, n)).Status == JournalDecodeStatus.Incomplete);
    }));

    [Fact]
    public void Any_flipped_bit_is_never_decoded_as_a_record() => Check(Prop.ForAll(Arb.From(
        from record in Records() from bit in Gen.Choose(0, int.MaxValue) select (record, bit)), input =>
    {
        var bytes = JournalCodec.Encode(input.record);
        var at = input.bit % (bytes.Length * 8);
        bytes[at / 8] ^= (byte)(1 << (at % 8));
        // A flip in the length reads as a longer record (incomplete) or an impossible length (corrupt); anywhere
        // else the CRC catches it.
        return JournalCodec.Decode(bytes).Status is JournalDecodeStatus.Corrupt or JournalDecodeStatus.Incomplete;
    }));

    /// <summary>Re-signs <paramref name="bytes"/> (a record whose content was edited) with a correct CRC.</summary>
    private static byte[] Resigned(byte[] bytes)
    {
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(bytes.Length - 4), Crc32.HashToUInt32(bytes.AsSpan(4, bytes.Length - 8)));
        return bytes;
    }

    [Theory]
    [InlineData("../etc/passwd", "outside the replicated root")]
    [InlineData("/etc/passwd", "is absolute")]
    [InlineData("a//b", "empty")]
    [InlineData("a/./b", "outside the replicated root")]
    public void A_checksummed_record_whose_path_leaves_the_root_is_malformed_and_says_why(string path, string why)
    {
        // Written by something else than this codec (it refuses such paths): same length as the example's path.
        var bytes = JournalCodec.Encode(Example with { Path = new string('x', Encoding.UTF8.GetByteCount(path)) });
        Encoding.UTF8.GetBytes(path).CopyTo(bytes, 4 + 8 + 8 + 2 + 1 + 2);

        var decoded = JournalCodec.Decode(Resigned(bytes));

        Assert.Equal(JournalDecodeStatus.Malformed, decoded.Status);
        Assert.Null(decoded.Record);
        Assert.Contains(why, decoded.Problem, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => JournalCodec.Encode(Example with { Path = path }));
    }

    [Fact]
    public void Blocks_out_of_order_or_past_the_files_length_are_malformed()
    {
        var twoBlocks = Example with { Length = 200_000, Blocks = [new BlockChange(1, new byte[] { 1 }), new BlockChange(2, new byte[] { 2 })] };
        var bytes = JournalCodec.Encode(twoBlocks);
        // Swap the two indexes: 2 then 1.
        var first = bytes.AsSpan().IndexOf(new byte[] { 0, 0, 0, 1, 0, 0, 0, 1, 1 });
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(first), 2);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(first + 9), 1);
        Assert.Equal(JournalDecodeStatus.Malformed, JournalCodec.Decode(Resigned(bytes)).Status);

        var past = JournalCodec.Encode(Example);
        // The file's length (70,000) shrunk below the block's end (65,536 + 4).
        BinaryPrimitives.WriteUInt64BigEndian(past.AsSpan(4 + 8 + 8 + 2 + 1 + 2 + 10), 65_537);
        var decoded = JournalCodec.Decode(Resigned(past));
        Assert.Equal(JournalDecodeStatus.Malformed, decoded.Status);
        Assert.Contains("\"db/main.db\"", decoded.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_length_field_past_the_limit_is_corrupt_before_anything_is_read_or_allocated()
    {
        var bytes = JournalCodec.Encode(Example);
        BinaryPrimitives.WriteUInt32BigEndian(bytes, uint.MaxValue);
        var decoded = JournalCodec.Decode(bytes);
        Assert.Equal((JournalDecodeStatus.Corrupt, 0), (decoded.Status, decoded.Consumed));
    }

    [Fact]
    public void A_length_too_short_for_any_record_is_corrupt_even_where_the_crc_of_nothing_matches()
    {
        // Found by the flipped-bit property: a delete record of sequence 0 whose length lost a bit (36 -> 4) left an
        // empty content, whose CRC (0) matched the sequence's first four zero bytes.
        var bytes = JournalCodec.Encode(new DeleteRecord(0, new DataGeneration(3, 9), "d/e/f/g.bin"));
        bytes[3] ^= 0x20;

        var decoded = JournalCodec.Decode(bytes);

        Assert.Equal((JournalDecodeStatus.Corrupt, 0), (decoded.Status, decoded.Consumed));
        Assert.Contains("a record length of 4 bytes", decoded.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Records_decode_one_after_another_from_a_stream_of_them()
    {
        var records = new JournalRecord[] { Example, new CreateRecord(43, new DataGeneration(3, 1), "db/new", 0b110_100_100), new CutRecord(44, new DataGeneration(3, 1)) };
        var stream = records.SelectMany(JournalCodec.Encode).ToArray();
        var at = 0;
        var decoded = new List<JournalRecord>();
        while (at < stream.Length)
        {
            var next = JournalCodec.Decode(stream.AsSpan(at));
            Assert.Equal(JournalDecodeStatus.Decoded, next.Status);
            decoded.Add(next.Record!);
            at += next.Consumed;
        }

        Assert.Equal(records.Select(r => r.Sequence), decoded.Select(r => r.Sequence));
        Assert.True(SameRecord(records[0], decoded[0]));
    }

    private static void Check(Property property) => property.QuickCheckThrowOnFailure();
}
