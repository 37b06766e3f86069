using System.Buffers;
using System.IO.Hashing;

namespace AppHb.Replication.Blocks;

/// <summary>A file's content as fixed-size blocks and their hashes (XxHash128): what the active node keeps per file
/// of what the peer has, so that a change ships only the blocks that differ, and what a difference resync compares.
/// Collisions are not a concern at 128 bits for accidental differences; the transfer is authenticated separately.</summary>
public sealed class BlockIndex
{
    private readonly UInt128[] _hashes;

    private BlockIndex(long length, int blockSize, UInt128[] hashes)
    {
        Length = length;
        BlockSize = blockSize;
        _hashes = hashes;
    }

    public long Length { get; }

    public int BlockSize { get; }

    public IReadOnlyList<UInt128> Hashes => _hashes;

    /// <summary>The index of a file with no content.</summary>
    public static BlockIndex Empty(int blockSize) => new(0, CheckSize(blockSize), []);

    /// <summary>An index as another node computed it (a difference resync's manifest).</summary>
    /// <exception cref="ArgumentException">The hashes do not cover <paramref name="length"/> in blocks of <paramref name="blockSize"/>.</exception>
    public static BlockIndex FromHashes(long length, int blockSize, UInt128[] hashes)
    {
        ArgumentNullException.ThrowIfNull(hashes);
        CheckSize(blockSize);
        if (length < 0 || hashes.LongLength != (length + blockSize - 1) / blockSize)
        {
            throw new ArgumentException($"{hashes.Length} block hashes cannot index {length} bytes in blocks of {blockSize}", nameof(hashes));
        }

        return new BlockIndex(length, blockSize, hashes);
    }

    /// <summary>Indexes <paramref name="content"/>.</summary>
    public static BlockIndex Of(ReadOnlySpan<byte> content, int blockSize)
    {
        CheckSize(blockSize);
        var hashes = new UInt128[(content.Length + blockSize - 1) / blockSize];
        for (var i = 0; i < hashes.Length; i++)
        {
            var start = i * blockSize;
            hashes[i] = XxHash128.HashToUInt128(content.Slice(start, Math.Min(blockSize, content.Length - start)));
        }

        return new BlockIndex(content.Length, blockSize, hashes);
    }

    /// <summary>Indexes a stream from its current position to its end, a block at a time, handing each block (its
    /// number, its bytes, valid only during the call, and its hash) to <paramref name="block"/>: what is shipped and
    /// what is indexed come from the same read, so they agree even while the file changes underneath. It reads
    /// <see cref="ReadBytes"/> at a time (whole blocks): a read per 4 KiB block made hashing a large file cost a
    /// system call per page.</summary>
    public static BlockIndex Of(Stream stream, int blockSize, Action<uint, ReadOnlySpan<byte>, UInt128> block)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(block);
        CheckSize(blockSize);
        var hashes = new List<UInt128>();
        var chunk = Math.Max(1, ReadBytes / blockSize) * blockSize;
        var buffer = ReplicationBuffers.Pool.Rent(chunk);
        long length = 0;
        try
        {
            while (true)
            {
                var filled = stream.ReadAtLeast(buffer.AsSpan(0, chunk), chunk, throwOnEndOfStream: false);
                for (var at = 0; at < filled; at += blockSize)
                {
                    var bytes = buffer.AsSpan(at, Math.Min(blockSize, filled - at));
                    var hash = XxHash128.HashToUInt128(bytes);
                    block((uint)hashes.Count, bytes, hash);
                    hashes.Add(hash);
                    length += bytes.Length;
                }

                if (filled < chunk)
                {
                    break;
                }
            }
        }
        finally
        {
            ReplicationBuffers.Pool.Return(buffer);
        }

        return new BlockIndex(length, blockSize, [.. hashes]);
    }

    /// <summary>How much <see cref="Of(Stream, int, Action{uint, ReadOnlySpan{byte}, UInt128})"/> reads at a time.</summary>
    public const int ReadBytes = 256 * 1024;

    /// <summary>The blocks of this content that a copy indexed as <paramref name="copy"/> lacks or has otherwise: sent
    /// with this length, they turn that copy into this content (a copy that is longer is truncated by the length).</summary>
    public IReadOnlyList<uint> ChangedFrom(BlockIndex copy)
    {
        ArgumentNullException.ThrowIfNull(copy);
        if (copy.BlockSize != BlockSize)
        {
            throw new ArgumentException($"block sizes differ ({BlockSize} and {copy.BlockSize}): index both with the same", nameof(copy));
        }

        var changed = new List<uint>();
        for (var i = 0; i < _hashes.Length; i++)
        {
            // A block the copy has with the same hash is the same only if it was whole in both or ends both at the
            // same length: the last block's hash covers its bytes only, so a shorter copy's last block differs by length.
            var same = i < copy._hashes.Length && copy._hashes[i] == _hashes[i] && BlockLength(i) == copy.BlockLength(i);
            if (!same)
            {
                changed.Add((uint)i);
            }
        }

        return changed;
    }

    private long BlockLength(int index) => Math.Min(BlockSize, Length - (long)index * BlockSize);

    private static int CheckSize(int blockSize) =>
        blockSize is > 0 and <= Journal.JournalCodec.MaxBlockSize
            ? blockSize
            : throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, $"a block size is 1 to {Journal.JournalCodec.MaxBlockSize} bytes");
}
