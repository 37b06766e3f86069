using AppHb.Replication.Apply;
using AppHb.Replication.Journal;

namespace AppHb.Replication.Transfer;

/// <summary>The standby's end of a replication connection: says where its replica stands, then applies the records
/// it receives strictly in sequence, a cut at a time (<see cref="CutApplier"/>), and acknowledges each cut once it is
/// durable. A record out of sequence, a frame that fails authentication or a record that does not decode ends the
/// connection with the reason; what was received of the unfinished cut is dropped, never applied.</summary>
public sealed class ReplicationReceiver(CutApplier applier)
{
    private readonly CutApplier _applier = applier ?? throw new ArgumentNullException(nameof(applier));

    /// <summary>Runs until the connection ends: by <paramref name="cancellationToken"/>, or with a
    /// <see cref="ReplicationRefusedException"/> saying what was wrong.</summary>
    public async Task RunAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var (generation, applied) = _applier.LastApplied;
        await channel.SendAsync(ReplicationMessage.Resume(generation, applied), cancellationToken);
        var cut = new List<JournalRecord>();
        var next = applied + 1;
        while (true)
        {
            var record = ReplicationMessage.ReadRecord(await channel.ReceiveAsync(cancellationToken));
            if (record.Sequence != next)
            {
                throw new ReplicationRefusedException($"record {record.Sequence} where record {next} was due: the journal's sequence numbers follow each other, so records were lost or reordered");
            }

            next++;
            cut.Add(record);
            if (record is CutRecord)
            {
                // Applying blocks this connection's reader, which is what it should: nothing is read ahead of a
                // cut that is not durable yet, and the sender's window is the socket's buffer.
                _applier.ApplyCut(cut);
                cut.Clear();
                await channel.SendAsync(ReplicationMessage.Acknowledged(record.Sequence), cancellationToken);
            }
        }
    }
}
