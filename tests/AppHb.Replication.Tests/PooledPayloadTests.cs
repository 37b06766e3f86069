using AppHb.Core.Cluster;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Tests;

/// <summary>The pooled buffers records travel in: the bytes are the message's, and a buffer is given back once.</summary>
public class PooledPayloadTests
{
    [Fact]
    public void A_record_sent_from_its_rented_bytes_is_the_record_message_byte_for_byte()
    {
        var generation = new DataGeneration(3, 1);
        var blocks = Enumerable.Range(0, 20).Select(i => new BlockChange((uint)i, Bytes.Random(new Random(i), 65_536))).ToArray();
        foreach (JournalRecord record in new JournalRecord[]
        {
            new WriteRecord(7, generation, "data/big", 20 * 65_536, 65_536, blocks, Modified: 1_700_000_000_123_456_789),
            new CutRecord(8, generation),
            new RenameRecord(9, generation, "a", "b"),
        })
        {
            var (rented, length) = JournalCodec.EncodeRented(record, ReplicationMessage.RecordHeadroom);
            using var pooled = ReplicationMessage.RecordFrom(new EncodedRecord(record.Sequence, record.Kind, rented, length));
            Assert.Equal(ReplicationMessage.Record(record), pooled.ToArray());
            Assert.Equal(JournalCodec.Encode(record), JournalCodec.Encode(ReplicationMessage.ReadRecordSharing(pooled.Memory)));
        }
    }

    [Fact]
    public void A_payload_disposed_twice_is_given_back_once_and_cannot_be_read_after()
    {
        var payload = new PooledPayload(1000);
        payload.Span.Fill(7);
        payload.Dispose();
        payload.Dispose();
        Assert.Throws<ObjectDisposedException>(() => payload.Span.Length);
        // Two rentals now hold two arrays: had the second Dispose given it back again, the pool would hand one
        // array to both.
        using var first = new PooledPayload(1000);
        using var second = new PooledPayload(1000);
        first.Span.Fill(1);
        second.Span.Fill(2);
        Assert.All(first.ToArray(), b => Assert.Equal(1, b));
    }
}
