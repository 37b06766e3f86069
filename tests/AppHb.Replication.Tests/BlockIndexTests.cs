using AppHb.Replication.Blocks;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Replication.Tests;

/// <summary>The block index: the changed blocks of a new content, written over an old copy and cut to the new length,
/// give the new content; unchanged blocks are not sent.</summary>
public class BlockIndexTests
{
    private static byte[] Apply(byte[] copy, byte[] content, IReadOnlyList<uint> blocks, int blockSize)
    {
        var result = new byte[content.Length];
        copy.AsSpan(0, Math.Min(copy.Length, content.Length)).CopyTo(result);
        foreach (var index in blocks)
        {
            var start = (int)index * blockSize;
            content.AsSpan(start, Math.Min(blockSize, content.Length - start)).CopyTo(result.AsSpan(start));
        }

        return result;
    }

    [Fact]
    public void The_changed_blocks_turn_any_copy_into_the_content() => Prop.ForAll(Arb.From(
        from copy in ArbMap.Default.GeneratorFor<byte[]>()
        from edits in Gen.ListOf(Gen.Choose(0, 300))
        from growth in Gen.Choose(-50, 50)
        from blockSize in Gen.Elements(1, 3, 16, 64)
        select (copy, edits, growth, blockSize)), input =>
    {
        var content = new byte[Math.Max(0, input.copy.Length + input.growth)];
        input.copy.AsSpan(0, Math.Min(content.Length, input.copy.Length)).CopyTo(content);
        foreach (var at in input.edits.Where(e => e < content.Length))
        {
            content[at] ^= 0x5a;
        }

        var changed = BlockIndex.Of(content, input.blockSize).ChangedFrom(BlockIndex.Of(input.copy, input.blockSize));
        return Apply(input.copy, content, changed, input.blockSize).AsSpan().SequenceEqual(content);
    }).QuickCheckThrowOnFailure();

    [Fact]
    public void One_changed_byte_in_a_large_file_sends_one_block()
    {
        var copy = new byte[10 * 65_536 + 100];
        Random.Shared.NextBytes(copy);
        var content = (byte[])copy.Clone();
        content[3 * 65_536 + 17] ^= 1;

        Assert.Equal([3u], BlockIndex.Of(content, 65_536).ChangedFrom(BlockIndex.Of(copy, 65_536)));
        // Appending sends the last (now longer) block and the new ones only.
        var appended = copy.Concat(new byte[70_000]).ToArray();
        Assert.Equal([10u, 11u], BlockIndex.Of(appended, 65_536).ChangedFrom(BlockIndex.Of(copy, 65_536)));
        Assert.Empty(BlockIndex.Of(copy, 65_536).ChangedFrom(BlockIndex.Of(copy, 65_536)));
    }

    [Fact]
    public void A_stream_read_a_block_at_a_time_indexes_as_the_whole_content_does()
    {
        var content = new byte[5 * 4096 + 1];
        Random.Shared.NextBytes(content);
        // A stream that returns short reads, as pipes and sockets do.
        using var stream = new TrickleStream(content);

        var indexed = BlockIndex.Of(stream, 4096, static (_, _, _) => { });

        Assert.Equal(BlockIndex.Of(content, 4096).Hashes, indexed.Hashes);
        Assert.Equal(content.Length, indexed.Length);
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(65_536)]
    [InlineData(1000)]
    [InlineData(300_000)]
    public void A_stream_read_many_blocks_at_a_time_hands_over_every_block_once_at_any_length(int blockSize)
    {
        var random = new Random(blockSize);
        foreach (var length in new[] { 0, 1, blockSize - 1, blockSize, BlockIndex.ReadBytes - 1, BlockIndex.ReadBytes, BlockIndex.ReadBytes + 1, (3 * BlockIndex.ReadBytes) + blockSize + 7 })
        {
            var content = new byte[Math.Max(0, length)];
            random.NextBytes(content);
            using var stream = new MemoryStream(content);
            var handed = new MemoryStream();
            var numbers = new List<uint>();

            var indexed = BlockIndex.Of(stream, blockSize, (number, bytes, hash) =>
            {
                numbers.Add(number);
                Assert.Equal(System.IO.Hashing.XxHash128.HashToUInt128(bytes), hash);
                handed.Write(bytes);
            });

            Assert.Equal(BlockIndex.Of(content, blockSize).Hashes, indexed.Hashes);
            Assert.Equal(content, handed.ToArray());
            Assert.Equal(Enumerable.Range(0, indexed.Hashes.Count).Select(n => (uint)n), numbers);
        }
    }

    private sealed class TrickleStream(byte[] content) : MemoryStream(content)
    {
        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, 1000)]);
    }
}
