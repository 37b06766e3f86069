using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using AppHb.Core.Cluster;
using AppHb.Core.Wire;

namespace AppHb.Replication.Journal;

/// <summary>How decoding a journal record ended.</summary>
public enum JournalDecodeStatus
{
    /// <summary>A whole, intact record.</summary>
    Decoded,
    /// <summary>The bytes end inside a record: more are coming, or (at the end of a journal file) a write torn by a
    /// crash.</summary>
    Incomplete,
    /// <summary>The checksum does not match: nothing in it can be trusted, not even its path.</summary>
    Corrupt,
    /// <summary>The checksum matches but the record breaks a rule (a length past the limit, a path leaving the root,
    /// blocks out of order): written by something that is not this codec.</summary>
    Malformed,
}

/// <summary>A decoding's outcome: the record, how many bytes it took, or why there is none. After a corrupt record
/// <paramref name="Consumed"/> is only its length field's word: a reader stops there (and resyncs) rather than skip.</summary>
public readonly record struct JournalDecoding(JournalDecodeStatus Status, JournalRecord? Record, int Consumed, string? Problem);

/// <summary>A record checked without decoding its body (<see cref="JournalCodec.DecodeHeader"/>): its sequence and
/// kind when <paramref name="Status"/> is Decoded; otherwise as <see cref="JournalDecoding"/>.</summary>
public readonly record struct JournalHeaderDecoding(JournalDecodeStatus Status, ulong Sequence, JournalRecordKind Kind, int Consumed, string? Problem);

/// <summary>The journal's record format (docs/replication-design.md, "Journal record format"): big-endian, a length,
/// the header, the kind's body, a CRC-32 over everything after the length. The same bytes go to the journal file and
/// over the dedicated link.</summary>
public static class JournalCodec
{
    /// <summary>The block size the engine uses; a record may name another (the peer's), up to <see cref="MaxBlockSize"/>.</summary>
    public const int DefaultBlockSize = 64 * 1024;
    public const int MaxBlockSize = 1024 * 1024;
    /// <summary>At most this many blocks in one write record: a larger change is several records.</summary>
    public const int MaxBlocksPerRecord = 256;
    /// <summary>Bounds what a reader allocates for one record, whatever its length field says.</summary>
    public const int MaxRecordSize = 32 * 1024 * 1024;
    private const int LengthSize = 4;
    private const int CrcSize = 4;
    /// <summary>The smallest record after its length field: sequence, generation, kind, an empty path (a cut), CRC.
    /// A shorter length is damage: with nothing to checksum, the CRC of nothing (0) would match zeros that follow.</summary>
    private const int MinLength = 8 + 8 + 2 + 1 + 2 + CrcSize;

    public static byte[] Encode(JournalRecord record) => EncodeAfter(record, headroom: 0);

    /// <summary>The record's bytes after <paramref name="headroom"/> bytes left for the caller (a message's kind
    /// byte): one array for both, where a record of megabytes copied into a message was a second large one.</summary>
    public static byte[] EncodeAfter(JournalRecord record, int headroom) =>
        EncodeInto(record, headroom, length => GC.AllocateUninitializedArray<byte>(length)).Array;

    /// <summary>The record's bytes after <paramref name="headroom"/> bytes, in an array rented from replication's pool
    /// (longer than <c>Length</c>), which the caller returns.</summary>
    public static (byte[] Array, int Length) EncodeRented(JournalRecord record, int headroom) =>
        EncodeInto(record, headroom, ReplicationBuffers.Pool.Rent);

    /// <summary>Writes the record's bytes to <paramref name="stream"/> and returns how many: encoded in a pooled buffer,
    /// since a record of a megabyte allocated per write (the journal's appends, the standby's patches) was
    /// large-object garbage at replication's rates.</summary>
    public static int WriteTo(JournalRecord record, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (encoded, length) = EncodeInto(record, 0, ReplicationBuffers.Pool.Rent);
        try
        {
            stream.Write(encoded, 0, length);
            return length;
        }
        finally
        {
            ReplicationBuffers.Pool.Return(encoded);
        }
    }

    private static (byte[] Array, int Length) EncodeInto(JournalRecord record, int headroom, Func<int, byte[]> allocate)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentOutOfRangeException.ThrowIfNegative(headroom);
        if (record is not CutRecord && JournalPath.Problem(record.Path) is { } problem)
        {
            throw new ArgumentException(problem, nameof(record));
        }

        var body = new List<byte>(64);
        BigEndianWriter.AddUInt64(body, record.Sequence);
        BigEndianWriter.AddUInt64(body, record.Generation.Number);
        BigEndianWriter.AddUInt16(body, record.Generation.Node);
        body.Add((byte)record.Kind);
        BigEndianWriter.AddString(body, record.Path, JournalPath.MaxBytes, "a path or link target");
        switch (record)
        {
            case WriteRecord write:
                if (write.BlockSize is <= 0 or > MaxBlockSize || write.Blocks.Count > MaxBlocksPerRecord)
                {
                    throw new ArgumentException($"a write record has a block size of 1 to {MaxBlockSize} bytes and at most {MaxBlocksPerRecord} blocks", nameof(record));
                }

                BigEndianWriter.AddUInt64(body, write.Length);
                BigEndianWriter.AddUInt32(body, (uint)write.BlockSize);
                BigEndianWriter.AddUInt16(body, (ushort)write.Blocks.Count);
                // The blocks themselves are copied once, straight into the record below.
                break;
            case CreateRecord create:
                BigEndianWriter.AddUInt32(body, create.Mode);
                BigEndianWriter.AddUInt32(body, create.Owner);
                BigEndianWriter.AddUInt32(body, create.Group);
                if (create.Modified is { } created)
                {
                    BigEndianWriter.AddUInt64(body, unchecked((ulong)created));
                }

                break;
            case RenameRecord rename:
                if (JournalPath.Problem(rename.NewPath) is { } renameProblem)
                {
                    throw new ArgumentException(renameProblem, nameof(record));
                }

                BigEndianWriter.AddString(body, rename.NewPath, JournalPath.MaxBytes, "a path or link target");
                break;
            case AttributesRecord attributes:
                BigEndianWriter.AddUInt32(body, attributes.Mode);
                BigEndianWriter.AddUInt32(body, attributes.Owner);
                BigEndianWriter.AddUInt32(body, attributes.Group);
                BigEndianWriter.AddUInt64(body, unchecked((ulong)attributes.ModifiedNanoseconds));
                break;
            case SymlinkRecord symlink:
                BigEndianWriter.AddString(body, symlink.Target, JournalPath.MaxBytes, "a path or link target");
                break;
            case DirectoryRecord directory:
                BigEndianWriter.AddUInt32(body, directory.Mode);
                BigEndianWriter.AddUInt32(body, directory.Owner);
                BigEndianWriter.AddUInt32(body, directory.Group);
                break;
        }

        var blocks = record is WriteRecord { Blocks: var written } ? written : [];
        // A write's time follows its blocks (optional: a record without it is a whole record too).
        var modified = record is WriteRecord { Modified: { } time } ? time : (long?)null;
        var bodyLength = body.Count + blocks.Sum(b => 8L + b.Content.Length) + (modified is null ? 0 : 8);
        if (LengthSize + bodyLength + CrcSize > MaxRecordSize)
        {
            throw new ArgumentException($"the record is {LengthSize + bodyLength + CrcSize} bytes, more than {MaxRecordSize}", nameof(record));
        }

        // Every byte of the record is written below: a record of megabytes is not zeroed first (the headroom is).
        var length = headroom + LengthSize + (int)bodyLength + CrcSize;
        var all = allocate(length);
        all.AsSpan(0, headroom).Clear();
        var bytes = all.AsSpan(headroom, length - headroom);
        BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)(bodyLength + CrcSize));
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(body).CopyTo(bytes[LengthSize..]);
        var at = LengthSize + body.Count;
        foreach (var block in blocks)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes[at..], block.Index);
            BinaryPrimitives.WriteUInt32BigEndian(bytes[(at + 4)..], (uint)block.Content.Length);
            block.Content.Span.CopyTo(bytes[(at + 8)..]);
            at += 8 + block.Content.Length;
        }

        if (modified is { } writtenAt)
        {
            BinaryPrimitives.WriteInt64BigEndian(bytes[at..], writtenAt);
            at += 8;
        }

        BinaryPrimitives.WriteUInt32BigEndian(bytes[at..], Crc32.HashToUInt32(bytes.Slice(LengthSize, (int)bodyLength)));
        return (all, length);
    }

    /// <summary>Checks the record at the start of <paramref name="bytes"/> (its length, its CRC-32) and reads its
    /// sequence and kind, without decoding its body: what the sender needs to send the record's bytes as the journal
    /// holds them. A body that breaks the codec's rules under a matching checksum (never written by this codec) is
    /// found by the peer's decoding, which refuses it.</summary>
    public static JournalHeaderDecoding DecodeHeader(ReadOnlySpan<byte> bytes)
    {
        var (status, total, problem) = Check(bytes);
        if (status != JournalDecodeStatus.Decoded)
        {
            return new(status, 0, default, total, problem);
        }

        var reader = new BigEndianReader(bytes.Slice(LengthSize, total - LengthSize - CrcSize));
        if (!reader.Read64(out var sequence) || !reader.Read64(out _) || !reader.Read16(out _) || !reader.Read8(out var kind))
        {
            return new(JournalDecodeStatus.Malformed, 0, default, total, "the header is cut short");
        }

        return Enum.IsDefined((JournalRecordKind)kind)
            ? new(JournalDecodeStatus.Decoded, sequence, (JournalRecordKind)kind, total, null)
            : new(JournalDecodeStatus.Malformed, 0, default, total, $"unknown record kind {kind}");
    }

    /// <summary>Decodes the record at the start of <paramref name="bytes"/>.</summary>
    public static JournalDecoding Decode(ReadOnlySpan<byte> bytes) => Decode(bytes, shared: null);

    /// <summary>Decodes the record at the start of <paramref name="bytes"/> with its blocks' content left in
    /// <paramref name="bytes"/>, not copied out: the record is valid only as long as they are (the standby's received
    /// message, given back to the pool once the record is staged; a megabyte copied per record otherwise).</summary>
    public static JournalDecoding DecodeSharing(ReadOnlyMemory<byte> bytes) => Decode(bytes.Span, bytes);

    private static JournalDecoding Decode(ReadOnlySpan<byte> bytes, ReadOnlyMemory<byte>? shared)
    {
        var (status, total, problem) = Check(bytes);
        if (status != JournalDecodeStatus.Decoded)
        {
            return new(status, null, total, problem);
        }

        var (record, malformed) = Read(bytes.Slice(LengthSize, total - LengthSize - CrcSize), shared?.Slice(LengthSize, total - LengthSize - CrcSize));
        return record is null
            ? new(JournalDecodeStatus.Malformed, null, total, malformed)
            : new(JournalDecodeStatus.Decoded, record, total, null);
    }

    /// <summary>Whether a whole record with a matching CRC-32 starts <paramref name="bytes"/> (Decoded), and its
    /// length; or why not.</summary>
    private static (JournalDecodeStatus Status, int Total, string? Problem) Check(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < LengthSize)
        {
            return (JournalDecodeStatus.Incomplete, 0, "the bytes end inside a record's length");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        if (length < MinLength || length > MaxRecordSize - LengthSize)
        {
            // Not trusted enough to skip: the reader cannot know where the next record starts.
            return (JournalDecodeStatus.Corrupt, 0, $"a record length of {length} bytes ({MinLength} to {MaxRecordSize - LengthSize})");
        }

        var total = LengthSize + (int)length;
        if (bytes.Length < total)
        {
            return (JournalDecodeStatus.Incomplete, 0, $"the record needs {total} bytes, {bytes.Length} are there");
        }

        var content = bytes.Slice(LengthSize, (int)length - CrcSize);
        return Crc32.HashToUInt32(content) != BinaryPrimitives.ReadUInt32BigEndian(bytes.Slice(total - CrcSize))
            ? (JournalDecodeStatus.Corrupt, total, "the record's CRC-32 does not match its bytes")
            : (JournalDecodeStatus.Decoded, total, null);
    }

    /// <param name="shared">The same bytes as <paramref name="content"/>, when the blocks are to be slices of them.</param>
    private static (JournalRecord? Record, string? Problem) Read(ReadOnlySpan<byte> content, ReadOnlyMemory<byte>? shared)
    {
        var reader = new BigEndianReader(content);
        if (!reader.Read64(out var sequence) || !reader.Read64(out var number) || !reader.Read16(out var node) || !reader.Read8(out var kind)
            || !reader.ReadText(JournalPath.MaxBytes, out var path))
        {
            return (null, "the header is cut short");
        }

        var generation = new DataGeneration(number, node);
        if ((JournalRecordKind)kind != JournalRecordKind.Cut && JournalPath.Problem(path) is { } pathProblem)
        {
            return (null, pathProblem);
        }

        JournalRecord? record = (JournalRecordKind)kind switch
        {
            JournalRecordKind.Write => ReadWrite(ref reader, sequence, generation, path, shared),
            JournalRecordKind.Create => reader.Read32(out var mode) && reader.Read32(out var createOwner) && reader.Read32(out var createGroup)
                ? new CreateRecord(sequence, generation, path, mode, createOwner, createGroup, ReadModified(ref reader)) : null,
            JournalRecordKind.Delete => new DeleteRecord(sequence, generation, path),
            JournalRecordKind.Rename => reader.ReadText(JournalPath.MaxBytes, out var newPath) && JournalPath.Problem(newPath) is null ? new RenameRecord(sequence, generation, path, newPath) : null,
            JournalRecordKind.Attributes => reader.Read32(out var m) && reader.Read32(out var owner) && reader.Read32(out var group) && reader.Read64(out var mtime)
                ? new AttributesRecord(sequence, generation, path, m, owner, group, unchecked((long)mtime)) : null,
            JournalRecordKind.Symlink => reader.ReadText(JournalPath.MaxBytes, out var target) && target.Length > 0 ? new SymlinkRecord(sequence, generation, path, target) : null,
            JournalRecordKind.Directory => reader.Read32(out var directoryMode) && reader.Read32(out var directoryOwner) && reader.Read32(out var directoryGroup)
                ? new DirectoryRecord(sequence, generation, path, directoryMode, directoryOwner, directoryGroup) : null,
            JournalRecordKind.Cut => path.Length == 0 ? new CutRecord(sequence, generation) : null,
            _ => null,
        };
        if (record is null)
        {
            return (null, Enum.IsDefined((JournalRecordKind)kind) ? $"a {(JournalRecordKind)kind} record for \"{path}\" whose body does not parse" : $"unknown record kind {kind}");
        }

        return reader.AtEnd ? (record, null) : (null, $"{reader.Left} bytes after the end of a {record.Kind} record for \"{path}\"");
    }

    private static WriteRecord? ReadWrite(ref BigEndianReader reader, ulong sequence, DataGeneration generation, string path, ReadOnlyMemory<byte>? shared)
    {
        if (!reader.Read64(out var length) || !reader.Read32(out var blockSize) || blockSize is 0 or > MaxBlockSize || !reader.Read16(out var count)
            || count > MaxBlocksPerRecord)
        {
            return null;
        }

        var blocks = new BlockChange[count];
        var previous = -1L;
        for (var i = 0; i < count; i++)
        {
            // Blocks in increasing order, each within a block and within the file's new length.
            if (!reader.Read32(out var index) || index <= previous || !reader.Read32(out var size) || size > blockSize
                || (ulong)index * blockSize + size > length)
            {
                return null;
            }

            ReadOnlyMemory<byte> data;
            if (shared is { } bytes)
            {
                var at = bytes.Length - reader.Left;
                if (!reader.Skip((int)size))
                {
                    return null;
                }

                data = bytes.Slice(at, (int)size);
            }
            else if (reader.ReadBytes((int)size, out var copied))
            {
                data = copied;
            }
            else
            {
                return null;
            }

            previous = index;
            blocks[i] = new BlockChange(index, data);
        }

        return new WriteRecord(sequence, generation, path, length, (int)blockSize, blocks, ReadModified(ref reader));
    }

    /// <summary>The optional modification time at the end of a write or create body: exactly 8 bytes left.</summary>
    private static long? ReadModified(ref BigEndianReader reader) =>
        reader.Left == 8 && reader.Read64(out var modified) ? unchecked((long)modified) : null;
}
