using AppHb.Replication.Journal;

namespace AppHb.Replication.Transfer;

/// <summary>The active node's end of a replication connection: learns where the peer's replica stands, sends the
/// journal's records after it in order, then each new one as the journaler calls <see cref="Appended"/>, and follows
/// the peer's acknowledgements (<see cref="Acknowledged"/>, <see cref="WaitAcknowledgedAsync"/>: the barrier's
/// ground).</summary>
public sealed class ReplicationSender(IJournalReader journal) : IDisposable
{
    private readonly IJournalReader _journal = journal ?? throw new ArgumentNullException(nameof(journal));
    private readonly SemaphoreSlim _appended = new(0, 1);
    private readonly Lock _gate = new();
    private TaskCompletionSource _acknowledgedChanged = New();
    private ulong _acknowledged;

    /// <summary>The last sequence the peer acknowledged as applied and durable (0 before it said).</summary>
    public ulong Acknowledged
    {
        get
        {
            lock (_gate)
            {
                return _acknowledged;
            }
        }
    }

    /// <summary>The last sequence sent on the current connection.</summary>
    public ulong Sent { get; private set; }

    /// <summary>The journaler appended (and synced) records: send them.</summary>
    public void Appended()
    {
        // At most one wake-up waits: the sender reads everything after what it sent each time it wakes.
        if (_appended.CurrentCount == 0)
        {
            try
            {
                _appended.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    /// <summary>Returns once the peer has acknowledged <paramref name="sequence"/> (a cut at or after it).</summary>
    public async Task WaitAcknowledgedAsync(ulong sequence, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_acknowledged >= sequence)
                {
                    return;
                }

                changed = _acknowledgedChanged.Task;
            }

            await changed.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Runs until the connection ends: by <paramref name="cancellationToken"/>, or with a
    /// <see cref="ReplicationRefusedException"/> saying what was wrong.</summary>
    public async Task RunAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var (generation, applied) = ReplicationMessage.ReadResume(await channel.ReceiveAsync(cancellationToken));
        if (applied > _journal.LastSequence)
        {
            throw new ReplicationRefusedException($"the peer's replica is at record {applied} of generation {generation}, past this journal's last record {_journal.LastSequence}: it went on without this node (a resync in reverse is due)");
        }

        Advance(applied);
        Sent = applied;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var acknowledgements = FollowAcknowledgementsAsync(channel, stop.Token);
        try
        {
            while (true)
            {
                var first = true;
                foreach (var record in _journal.ReadAfter(Sent))
                {
                    if (first && record.Sequence != Sent + 1)
                    {
                        throw new ReplicationRefusedException($"the peer needs record {Sent + 1}, and this journal starts at record {record.Sequence}: a difference resync is due");
                    }

                    first = false;
                    await channel.SendAsync(ReplicationMessage.Record(record), stop.Token);
                    Sent = record.Sequence;
                }

                var waiting = _appended.WaitAsync(stop.Token);
                if (await Task.WhenAny(waiting, acknowledgements) == acknowledgements)
                {
                    // The reader ended: the connection is gone; its exception says why.
                    await acknowledgements;
                    throw new ReplicationRefusedException("the peer closed the connection");
                }

                // Cancelled: this throws.
                await waiting;
            }
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await acknowledgements;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException)
            {
                // Ending with the connection: the exception that ended the loop above is the one reported.
            }
        }
    }

    private async Task FollowAcknowledgementsAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        while (true)
        {
            var sequence = ReplicationMessage.ReadAcknowledged(await channel.ReceiveAsync(cancellationToken));
            if (sequence > Sent)
            {
                throw new ReplicationRefusedException($"the peer acknowledged record {sequence}, and only {Sent} were sent");
            }

            Advance(sequence);
        }
    }

    private void Advance(ulong sequence)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            if (sequence <= _acknowledged && _acknowledged != 0)
            {
                return;
            }

            _acknowledged = sequence;
            changed = _acknowledgedChanged;
            _acknowledgedChanged = New();
        }

        changed.TrySetResult();
    }

    public void Dispose() => _appended.Dispose();

    private static TaskCompletionSource New() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
