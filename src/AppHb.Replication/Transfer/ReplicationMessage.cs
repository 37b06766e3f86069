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
    /// <summary>Receiver to sender: every record up to this sequence is applied and durable.</summary>
    Acknowledged = 3,
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

    public static byte[] Acknowledged(ulong sequence)
    {
        List<byte> body = [(byte)ReplicationMessageKind.Acknowledged];
        BigEndianWriter.AddUInt64(body, sequence);
        return [.. body];
    }

    public static byte[] Record(JournalRecord record)
    {
        var encoded = JournalCodec.Encode(record);
        var payload = new byte[1 + encoded.Length];
        payload[0] = (byte)ReplicationMessageKind.Record;
        encoded.CopyTo(payload, 1);
        return payload;
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
    public static ulong ReadAcknowledged(ReadOnlySpan<byte> payload)
    {
        Expect(payload, ReplicationMessageKind.Acknowledged, 1 + 8);
        new BigEndianReader(payload[1..]).Read64(out var sequence);
        return sequence;
    }

    /// <summary>The record a Record frame carries.</summary>
    /// <exception cref="ReplicationRefusedException">Not a record, or one that does not decode whole (its reason named).</exception>
    public static JournalRecord ReadRecord(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 1 || payload[0] != (byte)ReplicationMessageKind.Record)
        {
            throw new ReplicationRefusedException($"a {Describe(payload)} where a journal record was due");
        }

        var decoded = JournalCodec.Decode(payload[1..]);
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
