namespace AppHb.Replication.Journal;

/// <summary>Where the sender reads the journal from: the records after a sequence, in order.</summary>
public interface IJournalReader
{
    /// <summary>The sequence number of the last record, or 0 when it holds none.</summary>
    ulong LastSequence { get; }

    /// <summary>How many bytes the records after <paramref name="sequence"/> take.</summary>
    long BytesAfter(ulong sequence);

    /// <summary>The records after <paramref name="sequence"/>, in order.</summary>
    IEnumerable<JournalRecord> ReadAfter(ulong sequence);

    /// <summary>The records after <paramref name="sequence"/>, in order, as their bytes (<see cref="EncodedRecord"/>):
    /// what the sender sends. This default encodes what <see cref="ReadAfter"/> decoded; the journal file hands over
    /// the bytes it holds, checked but never decoded and encoded again.</summary>
    IEnumerable<EncodedRecord> ReadEncodedAfter(ulong sequence, int headroom)
    {
        foreach (var record in ReadAfter(sequence))
        {
            var (rented, length) = JournalCodec.EncodeRented(record, headroom);
            yield return new EncodedRecord(record.Sequence, record.Kind, rented, length);
        }
    }
}

/// <summary>A journal record as bytes: the first <c>Length</c> bytes of <paramref name="Rented"/>, an array rented
/// from replication's pool whose first bytes (the headroom asked for) are left for the caller (a message's kind). The
/// caller owns the array and gives it back with <see cref="Return"/> (once).</summary>
public readonly record struct EncodedRecord(ulong Sequence, JournalRecordKind Kind, byte[] Rented, int Length)
{
    public void Return() => ReplicationBuffers.Pool.Return(Rented);
}
