using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Journal;
using AppHb.Replication.Resync;

namespace AppHb.Replication.Transfer;

/// <summary>The standby's end of a replication connection: says where its replica stands, then applies the records
/// it receives strictly in sequence, a cut at a time (<see cref="CutApplier"/>; each record staged as it is taken, so
/// no cut is held in memory: <see cref="StagedCut"/>; what follows is received meanwhile up to
/// <see cref="ReadAheadBytes"/>), and acknowledges each cut once it is
/// durable. Asked for a difference resync, it sends what its replica holds (<see cref="TreeManifest"/>) and applies
/// the records that follow from the sequence the sender names; asked for a verify (right after a cut), it applies the
/// cuts it holds and sends what its replica holds then. A record out of sequence, a frame that fails
/// authentication or a record that does not decode ends the connection with the reason; what was received of the
/// unfinished cut is dropped, never applied. A cut is acknowledged as soon as it is durable and visible (its redo
/// log written, its steps carried out), and finished (its position recorded) right after.</summary>
/// <param name="cutApplied">Called after each cut is durable, with its generation and whether it closed a difference
/// resync (the replica then equals the active's tree as it was compared).</param>
/// <param name="beforeResync">Called when a difference resync is asked, before the replica is walked (where diverged
/// data is kept aside, <see cref="DivergedData"/>); an exception from it ends the connection, nothing replaced.</param>
public sealed class ReplicationReceiver(CutApplier applier, Action<DataGeneration, ulong, bool>? cutApplied = null, Action? beforeResync = null)
{
    private readonly CutApplier _applier = applier ?? throw new ArgumentNullException(nameof(applier));

    /// <summary>At most this much of consecutive cuts already received is applied together.</summary>
    private const long MergeBytes = 64L << 20;

    /// <summary>... and for at most this long from the first: records are staged as they arrive, so under steady
    /// writing more are always waiting, and merging until the bytes ran out held acknowledgements back for seconds
    /// (a test saw the journal's backlog never fall to where it may start again).</summary>
    private static readonly TimeSpan MergeTime = TimeSpan.FromMilliseconds(20);

    /// <summary>How much of what follows a cut being installed is received meanwhile (<see cref="FrameReadAhead"/>).</summary>
    public long ReadAheadBytes { get; init; } = FrameReadAhead.DefaultBudget;

    /// <summary>Whether a difference resync is under way: from the sender's request to its cut.</summary>
    public bool Resyncing { get; private set; }

    /// <summary>Runs until the connection ends: by <paramref name="cancellationToken"/>, or with a
    /// <see cref="ReplicationRefusedException"/> saying what was wrong.</summary>
    public async Task RunAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var (generation, applied) = _applier.LastApplied;
        await channel.SendAsync(ReplicationMessage.Resume(generation, applied), cancellationToken);
        var next = applied + 1;
        long held = 0;
        // Received ahead while a cut is installed: the link goes on meanwhile (the sender's window is this budget
        // and the socket's buffer), and nothing is acknowledged before its cut is durable, as before.
        await using var frames = new FrameReadAhead(channel, ReadAheadBytes, cancellationToken);
        // The records received since the last cut applied, staged as they come (cuts already here are merged).
        StagedCut? staged = null;
        long stagedSince = 0;
        void ApplyStaged()
        {
            var last = staged!.LastCut!;
            staged.Apply();
            staged.Dispose();
            staged = null;
            held = 0;
            var closedResync = Resyncing;
            Resyncing = false;
            cutApplied?.Invoke(last.Generation, last.Sequence, closedResync);
        }

        async Task ApplyAndAcknowledgeAsync()
        {
            // Acknowledged once durable and visible here (its redo log written and its steps carried out: a crash
            // now finishes it at the next start), before it is finished: a barrier waits for the acknowledgement,
            // and the finish (the syncs of the steps themselves, the replica's new position, the log removed) is
            // half of the cut's syncs. It is finished whatever the sending does: nothing is read in between.
            var last = staged!.LastCut!.Sequence;
            staged.Install();
            try
            {
                await channel.SendAsync(ReplicationMessage.Acknowledged(last), cancellationToken);
            }
            finally
            {
                ApplyStaged();
            }
        }

        try
        {
            while (true)
            {
                // Each payload goes back to the pool once read: a record is decoded out of it (its blocks copied).
                PooledPayload? payload = null;
                try
                {
                    JournalRecord record;
                    try
                    {
                        payload = await frames.TakeAsync(cancellationToken);
                        if (ReplicationMessage.KindOf(payload.Span) == ReplicationMessageKind.ResyncRequest && staged is null)
                        {
                            Resyncing = true;
                            beforeResync?.Invoke();
                            // Asked again (for paths that changed on the active meanwhile, or the whole tree) until the
                            // records start.
                            while (ReplicationMessage.KindOf(payload.Span) == ReplicationMessageKind.ResyncRequest)
                            {
                                var (blockSize, paths) = ReplicationMessage.ReadResyncRequest(payload.Span);
                                await SendManifestAsync(channel, blockSize, paths, cancellationToken);
                                payload.Dispose();
                                payload = await frames.TakeAsync(cancellationToken);
                            }

                            // The sender's journal numbers them, which may be another node's than the one the replica
                            // followed before: the position only has to follow on from here.
                            next = ReplicationMessage.ReadResyncFrom(payload.Span);
                            continue;
                        }

                        if (ReplicationMessage.KindOf(payload.Span) == ReplicationMessageKind.VerifyRequest)
                        {
                            var blockSize = ReplicationMessage.ReadVerifyRequest(payload.Span);
                            if (staged is { RecordsAfterCut: > 0 })
                            {
                                throw new ReplicationRefusedException($"a verify request inside a cut (after record {next - 1}): it is due only right after one");
                            }

                            // What the replica holds at the cut just received: the cuts held are applied first.
                            if (staged is not null)
                            {
                                await ApplyAndAcknowledgeAsync();
                            }

                            await SendManifestAsync(channel, blockSize, null, cancellationToken);
                            continue;
                        }

                        // Its blocks stay in the payload (staged below, before the payload goes back to the pool).
                        record = ReplicationMessage.ReadRecordSharing(payload.Memory);
                        if (record.Sequence != next)
                        {
                            throw new ReplicationRefusedException($"record {record.Sequence} where record {next} was due: the journal's sequence numbers follow each other, so records were lost or reordered");
                        }

                        if (record is not CutRecord && (!_applier.Scope.Holds(record.Path) || (record is RenameRecord rename && !_applier.Scope.Holds(rename.NewPath))))
                        {
                            throw new ReplicationRefusedException($"record {record.Sequence} names {(record is RenameRecord r && _applier.Scope.Holds(r.Path) ? r.NewPath : record.Path)}, outside what this node replicates ({_applier.Scope}): the two nodes' replication paths differ");
                        }
                    }
                    catch (ReplicationRefusedException) when (staged is { HoldsCut: true, ChangedBeforeCut: false })
                    {
                        // Cuts held to be merged are whole and authenticated: what ends the connection does not undo them
                        // (unless what came after them already changed a version they staged: then the sender sends them
                        // again with the rest).
                        ApplyStaged();
                        throw;
                    }

                    next++;
                    held += payload.Length;
                    if (staged is null)
                    {
                        staged = _applier.Begin();
                        stagedSince = System.Diagnostics.Stopwatch.GetTimestamp();
                    }

                    staged.Add(record);
                    if (record is not CutRecord)
                    {
                        continue;
                    }

                    if (frames.MoreWaiting && held < MergeBytes && System.Diagnostics.Stopwatch.GetElapsedTime(stagedSince) < MergeTime)
                    {
                        // The next cuts are already here: applied together, the syncs are paid once for all of them.
                        continue;
                    }

                    // Applying holds the next records back (they are read ahead, up to ReadAheadBytes), never the link.
                    await ApplyAndAcknowledgeAsync();
                }
                finally
                {
                    payload?.Dispose();
                }
            }
        }
        finally
        {
            Resyncing = false;
            // What was staged of a cut not applied: removed; the replica never saw it.
            staged?.Dispose();
        }
    }

    /// <param name="paths">Only these (each with everything under it); null: the whole replica.</param>
    private async Task SendManifestAsync(ReplicationChannel channel, int blockSize, IReadOnlyList<string>? paths, CancellationToken cancellationToken)
    {
        ulong entries = 0;
        var scope = _applier.Scope;
        var walked = paths is null ? TreeManifest.Walk(scope, blockSize) : TreeManifest.Walk(scope.Root, blockSize, paths.Where(scope.Holds));
        var counted = walked.Select(e =>
        {
            entries++;
            return e;
        });
        foreach (var part in TreeManifest.Encode(counted))
        {
            await channel.SendAsync(part, cancellationToken);
        }

        await channel.SendAsync(ReplicationMessage.ManifestEnd(entries), cancellationToken);
    }
}
