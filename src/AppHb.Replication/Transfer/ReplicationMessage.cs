using AppHb.Core.Cluster;
using AppHb.Core.Wire;
using AppHb.Replication.Journal;

namespace AppHb.Replication.Transfer;

/// <summary>What a sealed frame carries: its first byte says which.</summary>
public enum ReplicationMessageKind : byte
{
    /// <summary>Receiver to sender, first: where its replica stands (the generation and sequence of its last applied cut).</summary>
    Resume = 1,
    /// <summary>Sender to receiver: one journal record, encoded as in the journal.</summary>
    Record = 2,
    /// <summary>Receiver to sender: every record up to this sequence is durable on the standby (in its receive log,
    /// or applied).</summary>
    Acknowledged = 3,
    /// <summary>Sender to receiver, instead of records: the replica's position is not one this journal can continue
    /// from; send what the replica holds (a difference resync), hashed in blocks of this size.</summary>
    ResyncRequest = 4,
    /// <summary>Receiver to sender: part of what the replica holds (<see cref="Resync.TreeManifest"/>).</summary>
    ManifestPart = 5,
    /// <summary>Receiver to sender: the manifest is whole (how many entries it had).</summary>
    ManifestEnd = 6,
    /// <summary>Sender to receiver: the resync's records follow, starting with this sequence.</summary>
    ResyncFrom = 7,
    /// <summary>Sender to receiver, right after a cut: send what the replica holds now (at that cut), hashed in blocks
    /// of this size, for a verify; the records that follow are applied after it.</summary>
    VerifyRequest = 8,
    /// <summary>Either way: another message, deflated (<see cref="ReplicationChannel.CompressOutgoing"/>): its length
    /// before (u32), then the raw deflate stream. Inflated by the channel; never seen by a session.</summary>
    Compressed = 9,
    /// <summary>Receiver to sender: every record up to this sequence is visible in the replica (applied), not only
    /// durable (<see cref="Acknowledged"/>, which a receive log may send before the apply).</summary>
    Applied = 10,
    /// <summary>Sender to receiver, after the cut it names: something waits for its acknowledgement (a barrier), so
    /// the receiver makes it durable in its receive log and acknowledges it at once rather than once applied.</summary>
    AcknowledgeNow = 11,
}

/// <summary>Encodes and decodes the payloads of sealed frames (big-endian, as the rest of the pair's wire).</summary>
public static class ReplicationMessage
{
    public static byte[] Resume(DataGeneration generation, ulong sequence)
    {
        List<byte> body = [(byte)ReplicationMessageKind.Resume];
        BigEndianWriter.AddUInt64(body, generation.Number);
        BigEndianWriter.AddUInt16(body, generation.Node);
        BigEndianWriter.AddUInt64(body, sequence);
        return [.. body];
    }

    public static byte[] Acknowledged(ulong sequence) => WithNumber(ReplicationMessageKind.Acknowledged, sequence);

    public static byte[] AcknowledgeNow(ulong sequence) => WithNumber(ReplicationMessageKind.AcknowledgeNow, sequence);

    /// <exception cref="ReplicationRefusedException">Not an AcknowledgeNow, or short.</exception>
    public static ulong ReadAcknowledgeNow(ReadOnlySpan<byte> payload) => ReadNumber(payload, ReplicationMessageKind.AcknowledgeNow);

    public static byte[] Applied(ulong sequence) => WithNumber(ReplicationMessageKind.Applied, sequence);

    /// <summary>A message that is its kind and one number (u64): a sequence, a count.</summary>
    private static byte[] WithNumber(ReplicationMessageKind kind, ulong number)
    {
        List<byte> body = [(byte)kind];
        BigEndianWriter.AddUInt64(body, number);
        return [.. body];
    }

    /// <summary>The number of a message <see cref="WithNumber"/> made.</summary>
    /// <exception cref="ReplicationRefusedException">Not a message of <paramref name="kind"/>, or short.</exception>
    private static ulong ReadNumber(ReadOnlySpan<byte> payload, ReplicationMessageKind kind)
    {
        Expect(payload, kind, 1 + 8);
        new BigEndianReader(payload[1..]).Read64(out var number);
        return number;
    }

    /// <param name="paths">Only these paths (each with everything under it) may differ: the replica sends what it
    /// holds there; null: the whole tree.</param>
    public static byte[] ResyncRequest(int blockSize, IReadOnlyCollection<string>? paths = null)
    {
        List<byte> body = [(byte)ReplicationMessageKind.ResyncRequest];
        BigEndianWriter.AddUInt32(body, (uint)blockSize);
        if (paths is not null)
        {
            BigEndianWriter.AddUInt32(body, (uint)paths.Count);
            foreach (var path in paths)
            {
                BigEndianWriter.AddString(body, path, JournalPath.MaxBytes, "a path");
            }
        }

        return [.. body];
    }

    public static byte[] VerifyRequest(int blockSize)
    {
        var body = ResyncRequest(blockSize);
        body[0] = (byte)ReplicationMessageKind.VerifyRequest;
        return body;
    }

    public static byte[] ManifestEnd(ulong entries) => WithNumber(ReplicationMessageKind.ManifestEnd, entries);

    public static byte[] ResyncFrom(ulong first) => WithNumber(ReplicationMessageKind.ResyncFrom, first);

    /// <summary>Which message a payload is (its first byte; 0 for an empty one).</summary>
    public static ReplicationMessageKind KindOf(ReadOnlySpan<byte> payload) => payload.IsEmpty ? 0 : (ReplicationMessageKind)payload[0];

    /// <exception cref="ReplicationRefusedException">Not a resync request, short, or a block size the journal cannot carry.</exception>
    public static (int BlockSize, IReadOnlyList<string>? Paths) ReadResyncRequest(ReadOnlySpan<byte> payload)
    {
        if (payload.Length <= 1 + 4)
        {
            return (ReadManifestRequest(payload, ReplicationMessageKind.ResyncRequest), null);
        }

        var blockSize = ReadManifestRequest(payload[..5], ReplicationMessageKind.ResyncRequest);
        var reader = new BigEndianReader(payload[5..]);
        if (!reader.Read32(out var count) || count > (uint)reader.Left / 2)
        {
            throw new ReplicationRefusedException($"a resync request naming {count} paths in {payload.Length} bytes");
        }

        var paths = new List<string>((int)count);
        for (var i = 0; i < count; i++)
        {
            if (!reader.ReadText(JournalPath.MaxBytes, out var path) || JournalPath.Problem(path) is not null)
            {
                throw new ReplicationRefusedException($"a resync request whose path {i + 1} of {count} is cut short or not a path under the tree ({JournalPath.Problem(path ?? string.Empty) ?? "cut short"})");
            }

            paths.Add(path);
        }

        if (!reader.AtEnd)
        {
            throw new ReplicationRefusedException($"a resync request with {reader.Left} bytes after its {count} paths");
        }

        return (blockSize, paths);
    }

    /// <exception cref="ReplicationRefusedException">Not a verify request, short, or a block size the journal cannot carry.</exception>
    public static int ReadVerifyRequest(ReadOnlySpan<byte> payload) => ReadManifestRequest(payload, ReplicationMessageKind.VerifyRequest);

    private static int ReadManifestRequest(ReadOnlySpan<byte> payload, ReplicationMessageKind kind)
    {
        Expect(payload, kind, 1 + 4);
        new BigEndianReader(payload[1..]).Read32(out var blockSize);
        if (blockSize is 0 or > JournalCodec.MaxBlockSize)
        {
            throw new ReplicationRefusedException($"a {kind.ToString().ToLowerInvariant()} message with block size {blockSize}: 1 to {JournalCodec.MaxBlockSize} bytes");
        }

        return (int)blockSize;
    }

    /// <exception cref="ReplicationRefusedException">Not a manifest end, or short.</exception>
    public static ulong ReadManifestEnd(ReadOnlySpan<byte> payload) => ReadNumber(payload, ReplicationMessageKind.ManifestEnd);

    /// <exception cref="ReplicationRefusedException">Not a resync start, or short.</exception>
    public static ulong ReadResyncFrom(ReadOnlySpan<byte> payload) => ReadNumber(payload, ReplicationMessageKind.ResyncFrom);

    public static byte[] Record(JournalRecord record)
    {
        var payload = JournalCodec.EncodeAfter(record, headroom: 1);
        payload[0] = (byte)ReplicationMessageKind.Record;
        return payload;
    }

    /// <summary>What a record message holds before the record's bytes: its kind.</summary>
    public const int RecordHeadroom = 1;

    /// <summary>The record message of a record read as bytes with <see cref="RecordHeadroom"/>
    /// (<see cref="IJournalReader.ReadEncodedAfter"/>): it takes over the record's rented array, and the caller
    /// disposes it once it is sent (the sender's records: a megabyte each).</summary>
    public static PooledPayload RecordFrom(EncodedRecord record)
    {
        record.Rented[0] = (byte)ReplicationMessageKind.Record;
        return new PooledPayload(record.Rented, record.Length);
    }

    /// <exception cref="ReplicationRefusedException">Not a Resume, or short.</exception>
    public static (DataGeneration Generation, ulong Sequence) ReadResume(ReadOnlySpan<byte> payload)
    {
        Expect(payload, ReplicationMessageKind.Resume, 1 + 8 + 2 + 8);
        var reader = new BigEndianReader(payload[1..]);
        reader.Read64(out var number);
        reader.Read16(out var node);
        reader.Read64(out var sequence);
        return (new DataGeneration(number, node), sequence);
    }

    /// <exception cref="ReplicationRefusedException">Not an acknowledgement, or short.</exception>
    public static ulong ReadAcknowledged(ReadOnlySpan<byte> payload) => ReadNumber(payload, ReplicationMessageKind.Acknowledged);

    /// <exception cref="ReplicationRefusedException">Not an Applied, or short.</exception>
    public static ulong ReadApplied(ReadOnlySpan<byte> payload) => ReadNumber(payload, ReplicationMessageKind.Applied);

    /// <summary>The record a Record frame carries, with its blocks left in <paramref name="payload"/>
    /// (<see cref="JournalCodec.DecodeSharing"/>): valid only as long as the payload is.</summary>
    /// <exception cref="ReplicationRefusedException">Not a record, or one that does not decode whole (its reason named).</exception>
    public static JournalRecord ReadRecordSharing(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length < 1 || payload.Span[0] != (byte)ReplicationMessageKind.Record)
        {
            throw new ReplicationRefusedException($"a {Describe(payload.Span)} where a journal record was due");
        }

        var decoded = JournalCodec.DecodeSharing(payload[1..]);
        if (decoded.Status != JournalDecodeStatus.Decoded || decoded.Consumed != payload.Length - 1)
        {
            throw new ReplicationRefusedException($"a journal record that does not decode ({decoded.Status.ToString().ToLowerInvariant()}: {decoded.Problem ?? "bytes after its end"})");
        }

        return decoded.Record!;
    }

    private static void Expect(ReadOnlySpan<byte> payload, ReplicationMessageKind kind, int size)
    {
        if (payload.Length != size || payload[0] != (byte)kind)
        {
            throw new ReplicationRefusedException($"a {Describe(payload)} where a {kind.ToString().ToLowerInvariant()} message of {size} bytes was due");
        }
    }

    private static string Describe(ReadOnlySpan<byte> payload) => payload.Length == 0
        ? "an empty message"
        : $"message of kind {payload[0]} and {payload.Length} bytes";
}
