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
}
