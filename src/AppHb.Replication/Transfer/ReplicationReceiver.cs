using System.Runtime.ExceptionServices;
using System.Threading.Channels;
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
/// unfinished cut is dropped, never applied. A cut the sender asks to have acknowledged at once (a barrier waits) is
/// acknowledged once durable in the receive log, before it is applied; any other once durable and visible (its redo
/// log written, its steps carried out), and finished (its position recorded) right after; every cut applied is then
/// reported as applied.</summary>
/// <param name="cutApplied">Called after each cut is applied, with its generation and whether it closed a difference
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

    /// <summary>What the receiving task hands the applying task, in the order it arrived.</summary>
    private abstract record Received;

    /// <summary>A record, checked (in sequence, inside the scope); its blocks are still in the payload.</summary>
    private sealed record RecordReceived(JournalRecord Record, PooledPayload Payload) : Received;

    /// <summary>A request of the sender's (a resync's, a verify's) or the start of a resync's records.</summary>
    private sealed record MessageReceived(PooledPayload Payload) : Received;

    /// <summary>What ended the receiving: the applying task throws it after everything received before it.</summary>
    private sealed record Ended(ExceptionDispatchInfo Failure) : Received;

    /// <summary>Runs until the connection ends: by <paramref name="cancellationToken"/>, or with a
    /// <see cref="ReplicationRefusedException"/> saying what was wrong. Two tasks: one receives, checks and (a
    /// group of cuts at a time) makes records durable in the receive log and acknowledges them; the other applies
    /// them in order, behind it, and says so ("applied").</summary>
    public async Task RunAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        // Cuts acknowledged on an earlier connection and not applied (the connection ended first, or their apply
        // failed): applied first, so the position resumed from holds them.
        _applier.ApplyReceived();
        using var log = _applier.OpenReceiveLog();
        var (generation, applied) = _applier.LastApplied;
        log.Applied(applied);
        await channel.SendAsync(ReplicationMessage.Resume(generation, applied), cancellationToken);
        using var acknowledgements = new Acknowledgements(channel, applied);
        var received = Channel.CreateUnbounded<Received>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var progress = new ApplyProgress();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Received ahead while cuts are applied, up to ReadAheadBytes held (until the applying task gives each
        // payload back): the link goes on meanwhile.
        await using var frames = new FrameReadAhead(channel, ReadAheadBytes, stop.Token);
        var receiving = Task.Run(() => ReceiveAsync(frames, received.Writer, progress, log, acknowledgements, applied + 1, stop.Token), CancellationToken.None);
        try
        {
            await ApplyAsync(channel, received.Reader, progress, log, acknowledgements, cancellationToken);
        }
        finally
        {
            await stop.CancelAsync();
            await receiving;
            // What was received and not applied goes back to the pool (before the read-ahead that counts it ends).
            while (received.Reader.TryRead(out var left))
            {
                (left switch { RecordReceived r => r.Payload, MessageReceived m => m.Payload, _ => null })?.Dispose();
            }
        }
    }

    /// <summary>The receiving task: takes each frame, checks a record (its sequence, its paths), adds it to the
    /// receive log's group, hands it on; once the sender asks for the acknowledgement of a cut received (a barrier
    /// waits), commits the group's cuts to the log and acknowledges them; so too, unasked, for a cut that arrives while
    /// the applying task has nothing to apply. Other cuts are acknowledged once applied, as before the log: an
    /// asynchronous writer's stream pays no sync for them (a sync per cut at 1,000 writes/s slowed the apply, and with
    /// it the recovery point). Never throws: what ends it is handed on last.</summary>
    private async Task ReceiveAsync(FrameReadAhead frames, ChannelWriter<Received> received, ApplyProgress progress, ReceiveLog log,
        Acknowledgements acknowledgements, ulong next, CancellationToken cancellationToken)
    {
        void HandOn(Received item)
        {
            progress.HandedOn(item is RecordReceived { Record: CutRecord });
            received.TryWrite(item);
        }

        // From a resync's request to its cut, nothing goes to the log: the resync's cut is acknowledged once applied
        // (the sender counts the resync done then).
        var resyncing = false;
        var first = next;
        // The highest cut the sender asked to have acknowledged at once.
        ulong urgent = 0;

        async Task CommitIfAskedAsync(bool unasked = false)
        {
            if ((unasked || (urgent > acknowledgements.Sent && log.LastCut >= urgent)) && log.Commit() is { } committed)
            {
                // Durable here: a crash from now on applies it from the log (CutApplier.Recover), and a takeover does
                // before this node serves.
                await acknowledgements.SendAsync(committed, cancellationToken);
            }
        }

        try
        {
            while (true)
            {
                var payload = await frames.TakeAsync(cancellationToken);
                JournalRecord record;
                try
                {
                    var kind = ReplicationMessage.KindOf(payload.Span);
                    if (kind == ReplicationMessageKind.AcknowledgeNow)
                    {
                        urgent = Math.Max(urgent, ReplicationMessage.ReadAcknowledgeNow(payload.Span));
                        payload.Dispose();
                        await CommitIfAskedAsync();
                        continue;
                    }

                    if (kind is ReplicationMessageKind.ResyncRequest or ReplicationMessageKind.VerifyRequest or ReplicationMessageKind.ResyncFrom)
                    {
                        if (kind == ReplicationMessageKind.ResyncRequest && !resyncing)
                        {
                            if (next != first)
                            {
                                throw new ReplicationRefusedException($"a resync request after record {next - 1}: it is due only as a connection starts");
                            }

                            // Asked only as a connection starts, when the log's cuts are applied (RunAsync): the
                            // position is about to be numbered anew, and nothing of the old numbering may follow it.
                            resyncing = true;
                            log.Forget();
                        }
                        else if (kind == ReplicationMessageKind.ResyncFrom)
                        {
                            // The sender's journal numbers them, which may be another node's than the one the replica
                            // followed before: the position only has to follow on from here.
                            next = ReplicationMessage.ReadResyncFrom(payload.Span);
                        }

                        HandOn(new MessageReceived(payload));
                        continue;
                    }

                    // Its blocks stay in the payload (staged by the applying task, which then gives it back).
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
                catch
                {
                    payload.Dispose();
                    throw;
                }

                next++;
                if (resyncing)
                {
                    log.Bypass();
                    resyncing = record is not CutRecord;
                }

                log.Add(payload.Span[ReplicationMessage.RecordHeadroom..], record.Sequence, record is CutRecord);
                if (record is CutRecord)
                {
                    try
                    {
                        // Before the applying task starts on it: its syncs would only slow this one down. Unasked too
                        // when that task waits with nothing to do (a writer's occasional commit, the barrier likely to
                        // follow it): logged now, the cut is acknowledged by the time the barrier's capture asks.
                        await CommitIfAskedAsync(unasked: progress.Idle);
                    }
                    catch
                    {
                        payload.Dispose();
                        throw;
                    }
                }

                HandOn(new RecordReceived(record, payload));
            }
        }
        catch (Exception e)
        {
            HandOn(new Ended(ExceptionDispatchInfo.Capture(e)));
        }
        finally
        {
            received.TryComplete();
        }
    }

    /// <summary>The applying task: stages each record as it comes (so no cut is held in memory,
    /// <see cref="StagedCut"/>), applies cuts already here together (up to <see cref="MergeBytes"/> and
    /// <see cref="MergeTime"/>), acknowledges a cut the log did not, and reports each cut applied.</summary>
    private async Task ApplyAsync(ReplicationChannel channel, ChannelReader<Received> received, ApplyProgress progress, ReceiveLog log,
        Acknowledgements acknowledgements, CancellationToken cancellationToken)
    {
        long held = 0;
        // The records received since the last cut applied, staged as they come (cuts already here are merged).
        StagedCut? staged = null;
        long stagedSince = 0;
        long stagedCuts = 0;
        void ApplyStaged()
        {
            var last = staged!.LastCut!;
            staged.Apply();
            staged.Dispose();
            staged = null;
            held = 0;
            progress.Applied(stagedCuts);
            stagedCuts = 0;
            log.Applied(last.Sequence);
            var closedResync = Resyncing;
            Resyncing = false;
            cutApplied?.Invoke(last.Generation, last.Sequence, closedResync);
        }

        async Task ApplyAndAcknowledgeAsync()
        {
            var last = staged!.LastCut!.Sequence;
            if (acknowledgements.Sent < last)
            {
                // Not in the receive log (too large, a resync's, or the log is off): acknowledged once durable and
                // visible here (its redo log written and its steps carried out: a crash now finishes it at the next
                // start), before it is finished (the syncs of the steps themselves, the replica's new position).
                staged.Install();
                try
                {
                    await acknowledgements.SendAsync(last, cancellationToken);
                }
                finally
                {
                    ApplyStaged();
                }
            }
            else
            {
                ApplyStaged();
            }

            await channel.SendAsync(ReplicationMessage.Applied(last), cancellationToken);
        }

        async Task<Received> TakeAsync()
        {
            var item = await received.ReadAsync(cancellationToken);
            progress.Taken();
            return item;
        }

        try
        {
            while (true)
            {
                var item = await TakeAsync();
                if (item is Ended ended)
                {
                    if (ended.Failure.SourceException is ReplicationRefusedException && staged is { HoldsCut: true, ChangedBeforeCut: false })
                    {
                        // Cuts held to be merged are whole and authenticated: what ends the connection does not undo
                        // them (unless what came after them already changed a version they staged: then the sender
                        // sends them again with the rest, or the receive log holds them).
                        ApplyStaged();
                    }

                    ended.Failure.Throw();
                }

                if (item is MessageReceived message)
                {
                    var payload = message.Payload;
                    try
                    {
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
                                var following = await TakeAsync();
                                if (following is Ended failed)
                                {
                                    failed.Failure.Throw();
                                }

                                payload = following is MessageReceived request
                                    ? request.Payload
                                    : throw new ReplicationRefusedException($"record {((RecordReceived)following).Record.Sequence} before the resync's start (a resync-from message was due)");
                            }

                            // The resync's first sequence: the receiving task follows on from it.
                            _ = ReplicationMessage.ReadResyncFrom(payload.Span);
                            continue;
                        }

                        if (ReplicationMessage.KindOf(payload.Span) == ReplicationMessageKind.VerifyRequest)
                        {
                            var blockSize = ReplicationMessage.ReadVerifyRequest(payload.Span);
                            if (staged is { RecordsAfterCut: > 0 })
                            {
                                throw new ReplicationRefusedException($"a verify request inside a cut (after record {staged.LastCut?.Sequence ?? 0}): it is due only right after one");
                            }

                            // What the replica holds at the cut just received: the cuts held are applied first.
                            if (staged is not null)
                            {
                                await ApplyAndAcknowledgeAsync();
                            }

                            await SendManifestAsync(channel, blockSize, null, cancellationToken);
                            continue;
                        }

                        throw new ReplicationRefusedException($"a {ReplicationMessage.KindOf(payload.Span)} message here, outside a resync's start");
                    }
                    finally
                    {
                        payload.Dispose();
                    }
                }

                var (record, recordPayload) = (RecordReceived)item;
                try
                {
                    held += recordPayload.Length;
                    if (staged is null)
                    {
                        staged = _applier.Begin();
                        stagedSince = System.Diagnostics.Stopwatch.GetTimestamp();
                    }

                    staged.Add(record);
                    stagedCuts += record is CutRecord ? 1 : 0;
                }
                finally
                {
                    recordPayload.Dispose();
                }

                if (record is not CutRecord)
                {
                    continue;
                }

                if (progress.Waiting > 0 && held < MergeBytes && System.Diagnostics.Stopwatch.GetElapsedTime(stagedSince) < MergeTime)
                {
                    // The next cuts are already here: applied together, the syncs are paid once for all of them.
                    continue;
                }

                // Applying holds the next records back (received ahead, up to ReadAheadBytes), never the link.
                await ApplyAndAcknowledgeAsync();
            }
        }
        finally
        {
            Resyncing = false;
            // What was staged of a cut not applied: removed; the replica never saw it (the receive log may hold it:
            // the next connection, or a takeover, applies it from there).
            staged?.Dispose();
        }
    }

    /// <summary>What the receiving task knows of the applying task: how many items wait for it, and whether every cut
    /// handed on is applied.</summary>
    private sealed class ApplyProgress
    {
        private int _waiting;
        private long _cutsHandedOn;
        private long _cutsApplied;

        /// <summary>Items handed on and not yet taken.</summary>
        public int Waiting => Volatile.Read(ref _waiting);

        /// <summary>Whether every cut handed on is applied (the applying task at most stages records of the next one): a
        /// cut handed on now would be applied at once, alone. Read by the receiving task only.</summary>
        public bool Idle => _cutsHandedOn == Volatile.Read(ref _cutsApplied);

        public void HandedOn(bool cut)
        {
            Interlocked.Increment(ref _waiting);
            if (cut)
            {
                _cutsHandedOn++;
            }
        }

        public void Taken() => Interlocked.Decrement(ref _waiting);

        public void Applied(long cuts) => Interlocked.Add(ref _cutsApplied, cuts);
    }

    /// <summary>The acknowledgements of one connection, from either task, in increasing order.</summary>
    private sealed class Acknowledgements(ReplicationChannel channel, ulong applied) : IDisposable
    {
        private readonly SemaphoreSlim _order = new(1, 1);
        private ulong _sent = applied;

        /// <summary>The last sequence acknowledged.</summary>
        public ulong Sent => Volatile.Read(ref _sent);

        public async Task SendAsync(ulong sequence, CancellationToken cancellationToken)
        {
            await _order.WaitAsync(cancellationToken);
            try
            {
                if (sequence > _sent)
                {
                    await channel.SendAsync(ReplicationMessage.Acknowledged(sequence), cancellationToken);
                    Volatile.Write(ref _sent, sequence);
                }
            }
            finally
            {
                _order.Release();
            }
        }

        public void Dispose() => _order.Dispose();
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
