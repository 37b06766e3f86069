using AppHb.Core.Cluster;
using AppHb.Replication.Journal;
using AppHb.Replication.Resync;

namespace AppHb.Replication.Transfer;

/// <summary>The active node's end of a replication connection: learns where the peer's replica stands, sends the
/// journal's records after it in order, then each new one as the journaler calls <see cref="Appended"/>, and follows
/// the peer's acknowledgements (<see cref="Acknowledged"/>, <see cref="WaitAcknowledgedAsync"/>: the barrier's
/// ground). With a <see cref="IResyncSource"/>, a replica this journal cannot continue (a new peer, one that was
/// apart, an apphbd restart here, the other node's journal) gets a difference resync instead of a refusal.</summary>
/// <param name="resync">Null: the journal holds every record from the first (a replica at 0 is empty), and a replica
/// it cannot continue is refused.</param>
public sealed class ReplicationSender(IJournalReader journal, IResyncSource? resync = null) : IDisposable
{
    private readonly IJournalReader _journal = journal ?? throw new ArgumentNullException(nameof(journal));
    private readonly SemaphoreSlim _appended = new(0, 1);
    private readonly Lock _gate = new();
    private TaskCompletionSource _acknowledgedChanged = New();
    private ulong _acknowledged;

    /// <summary>The first replica position this journal continues: a replica at or after the last resync's cut
    /// applied this journal's records on top of what the resync compared. None before a resync (a resync source
    /// knows nothing of a replica it has not compared).</summary>
    private ulong _continuesFrom = resync is null ? 0 : ulong.MaxValue;

    /// <summary>At most this many bytes a second of a difference resync's records are sent (0: no limit), so that a
    /// resync after days apart leaves room on the dedicated link for the pair's heartbeats and the changes made
    /// meanwhile. Changes journaled after the resync's cut are not limited.</summary>
    public long ResyncBytesPerSecond { get; init; }

    /// <summary>Whether records are deflated on the wire when that makes them smaller (replication's `compress`;
    /// <see cref="ReplicationChannel.CompressOutgoing"/>): taken by each connection at its start.</summary>
    public bool Compress { get; set; }

    /// <summary>Bytes sent to the peer since this sender was made (messages, before compression and sealing), and
    /// <see cref="BytesSentCompressed"/> as they went: the two differ by what compression saved.</summary>
    public long BytesSent
    {
        get
        {
            lock (_gate)
            {
                return _bytesSentBefore + (_channel?.PayloadBytesSent ?? 0);
            }
        }
    }

    public long BytesSentCompressed
    {
        get
        {
            lock (_gate)
            {
                return _bytesSentCompressedBefore + (_channel?.CompressedBytesSent ?? 0);
            }
        }
    }

    // Under _gate: a connection's counts move into these as it ends, never counted twice or not at all (a counter).
    private long _bytesSentBefore;
    private long _bytesSentCompressedBefore;
    private ReplicationChannel? _channel;

    /// <summary>The last difference resync's cut, its records' bytes, how many of them were sent, and when sending
    /// began (Stopwatch); written by the connection's loop, read by status.</summary>
    private ulong _resyncCut;
    private long _resyncTotal;
    private long _resyncSent;
    private long _resyncStarted;

    /// <summary>While a difference resync is sent and not yet acknowledged: its records' bytes sent so far, and in all.</summary>
    public (long Sent, long Total)? ResyncProgress
    {
        get
        {
            lock (_gate)
            {
                return _resyncCut > 0 && _acknowledged < _resyncCut ? (Interlocked.Read(ref _resyncSent), _resyncTotal) : null;
            }
        }
    }

    /// <summary>A request for the replica's manifest (a verify), from the call until its last part arrived.</summary>
    private sealed class ManifestAsked(int blockSize)
    {
        public int BlockSize { get; } = blockSize;

        /// <summary>Whether the request went out (after the cut <see cref="At"/> names); read by the acknowledgement
        /// reader's thread.</summary>
        public bool Sent
        {
            get => Volatile.Read(ref _sent);
            set => Volatile.Write(ref _sent, value);
        }

        private bool _sent;

        public TaskCompletionSource<ulong> At { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<IReadOnlyList<ManifestEntry>> Manifest { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<ManifestEntry> Entries { get; } = [];

        public void Fail(Exception e)
        {
            At.TrySetException(e);
            Manifest.TrySetException(e);
        }
    }

    private ManifestAsked? _manifestAsked;
    private CancellationTokenSource? _connectionStop;
    private string? _resyncDemanded;

    /// <summary>Asks the connected replica what it holds (for a verify): the request goes right after a cut, whose
    /// sequence <c>At</c> gives, and the replica walks its tree with every record up to that cut applied and none
    /// after; <c>Manifest</c> is what it found. Both fail if the connection ends first.</summary>
    /// <exception cref="InvalidOperationException">No replica is connected, or a verify is already asking.</exception>
    public (Task<ulong> At, Task<IReadOnlyList<ManifestEntry>> Manifest) AskReplicaManifest(int blockSize)
    {
        ManifestAsked asked;
        lock (_gate)
        {
            if (!_connected)
            {
                throw new InvalidOperationException("no replica is connected: there is nothing to compare with");
            }

            if (_manifestAsked is not null)
            {
                throw new InvalidOperationException("a verify is already running; wait for it");
            }

            _manifestAsked = asked = new ManifestAsked(blockSize);
        }

        Appended();
        return (asked.At.Task, asked.Manifest.Task);
    }

    /// <summary>Ends the current connection with <paramref name="reason"/>, and has the next one compare the replica
    /// (a difference resync) instead of continuing it: for a replica found to differ from what it was sent.</summary>
    public void ResyncNow(string reason)
    {
        lock (_gate)
        {
            Volatile.Write(ref _continuesFrom, ulong.MaxValue);
            _resyncDemanded = reason;
            // What a verify found was changed behind replication's back: no dirty set names it.
            _wholeTreeDemanded = true;
            _connectionStop?.Cancel();
        }
    }

    /// <summary>Set by <see cref="ResyncNow"/>: the next resync compares the whole tree.</summary>
    private bool _wholeTreeDemanded;

    /// <summary>Difference resyncs started (each connection that could not continue the replica's position).</summary>
    public long Resyncs { get; private set; }

    /// <summary>When each batch not yet acknowledged was journaled (its last sequence, a Stopwatch timestamp), oldest
    /// first: the lag in seconds is the age of the oldest. At most <see cref="MaxLagMarks"/>: past that (a peer away
    /// for long), a batch joins the newest mark, whose older time only makes the lag read longer, never shorter.</summary>
    private readonly LinkedList<(ulong Last, long At)> _unacknowledged = new();

    private const int MaxLagMarks = 4096;

    /// <summary>Starts <paramref name="journal"/> again (its size limit) without what nobody needs: with a peer
    /// connected, the records it has not acknowledged are kept, however many (dropping them would end the connection
    /// and resync, and a resync larger than the limit would then never finish); with none, only the last record (the
    /// peer is resynced when it returns, not continued). Decided under the same lock as a new connection's choice
    /// between continuing and resyncing, so that a peer is never continued from records the restart just dropped.</summary>
    /// <returns>The first record kept.</returns>
    public ulong RestartJournal(Journal.JournalFile journal)
    {
        ArgumentNullException.ThrowIfNull(journal);
        lock (_gate)
        {
            var first = journal.Restart(_connected ? _acknowledged : ulong.MaxValue);
            if (first > 0 && _continuesFrom < first - 1)
            {
                _continuesFrom = first - 1;
            }

            return first;
        }
    }

    /// <summary>Starts <paramref name="journal"/> again from its last record whatever the peer has (it was found
    /// damaged): every replica is resynced, none continued.</summary>
    public void DropJournal(Journal.JournalFile journal)
    {
        ArgumentNullException.ThrowIfNull(journal);
        lock (_gate)
        {
            journal.Restart();
            _continuesFrom = ulong.MaxValue;
        }
    }

    /// <summary>The journaler appended and synced records up to <paramref name="last"/>: they are sent (as
    /// <see cref="Appended"/>), and the lag (<see cref="LagSeconds"/>) counts from now for them.</summary>
    public void Journaled(ulong last)
    {
        lock (_gate)
        {
            if (last > _acknowledged)
            {
                if (_unacknowledged.Count < MaxLagMarks)
                {
                    _unacknowledged.AddLast((last, System.Diagnostics.Stopwatch.GetTimestamp()));
                }
                else
                {
                    _unacknowledged.Last!.Value = (last, _unacknowledged.Last.Value.At);
                }
            }
        }

        Appended();
    }

    /// <summary>How long the oldest change the peer has not acknowledged has waited (0 when it has them all): the
    /// recovery point if this node died now.</summary>
    public double LagSeconds
    {
        get
        {
            lock (_gate)
            {
                return _unacknowledged.First is { } oldest ? System.Diagnostics.Stopwatch.GetElapsedTime(oldest.Value.At).TotalSeconds : 0;
            }
        }
    }

    /// <summary>The last sequence the peer acknowledged as durable (in its receive log, or applied; 0 before it
    /// said).</summary>
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

    /// <summary>The last sequence the peer said is applied, visible in its replica (0 before it said): at or before
    /// <see cref="Acknowledged"/>, which a receive log acknowledges before the apply.</summary>
    public ulong Applied
    {
        get
        {
            lock (_gate)
            {
                return _applied;
            }
        }
    }

    private ulong _applied;

    /// <summary>Returns once the peer has applied <paramref name="sequence"/> (a cut at or after it): what it holds
    /// is visible in its replica (a verify's walk, a comparison of both trees), not only durable.</summary>
    public Task WaitAppliedAsync(ulong sequence, CancellationToken cancellationToken) =>
        WaitUntilAsync(() => _applied >= sequence, cancellationToken);

    /// <summary>Returns once <paramref name="reached"/> (read under the lock) holds, looked at again each time the
    /// peer acknowledges or applies more; <paramref name="waiting"/> is called once, when it did not hold at first.</summary>
    private async Task WaitUntilAsync(Func<bool> reached, CancellationToken cancellationToken, Action? waiting = null)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (reached())
                {
                    return;
                }

                changed = _acknowledgedChanged.Task;
            }

            waiting?.Invoke();
            waiting = null;
            await changed.WaitAsync(cancellationToken);
        }
    }

    /// <summary>The highest sequence a waiter wants acknowledged as soon as it is durable on the peer.</summary>
    private ulong _urgent;

    /// <summary>Something will wait for the acknowledgement of <paramref name="sequence"/> (a barrier's cut, told before
    /// the cut is sent, or a cut sent already): the sender wakes and asks the peer to acknowledge it at once, right
    /// after the cut (<see cref="ReplicationMessageKind.AcknowledgeNow"/>).</summary>
    public void AcknowledgeSoon(ulong sequence)
    {
        InterlockedMax(ref _urgent, sequence);
        Appended();
    }

    private static void InterlockedMax(ref ulong target, ulong value)
    {
        for (var seen = Volatile.Read(ref target); seen < value; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
            {
                return;
            }
        }
    }

    /// <summary>Whether a connection is running (from the peer's first message to its end).</summary>
    public bool Connected => _connected;

    private volatile bool _connected;

    /// <summary>The last sequence handed to the current connection (being sent, or sent). Set before the send: the
    /// replica can apply and acknowledge a record before the send that carried it has returned here, and the
    /// acknowledgement reader checks against this.</summary>
    public ulong Sent
    {
        get => Volatile.Read(ref _sent);
        private set => Volatile.Write(ref _sent, value);
    }

    private ulong _sent;

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

    /// <summary>How many paths the last difference resync compared (the dirty set recorded while apart), or null when
    /// it compared the whole tree (or none ran).</summary>
    public int? LastResyncPaths { get; private set; }

    /// <summary>Returns once the peer has acknowledged <paramref name="sequence"/> (a cut at or after it): the peer is
    /// asked to acknowledge it as soon as it is durable there (<see cref="ReplicationMessageKind.AcknowledgeNow"/>).</summary>
    public Task WaitAcknowledgedAsync(ulong sequence, CancellationToken cancellationToken) =>
        WaitUntilAsync(() => _acknowledged >= sequence, cancellationToken, () => AcknowledgeSoon(sequence));

    /// <summary>Returns once the replica stands at a position this journal continues and has acknowledged it: after
    /// <see cref="ResyncNow"/>, when the resync it asked for is applied.</summary>
    public Task WaitContinuedAsync(CancellationToken cancellationToken) =>
        WaitUntilAsync(() => Volatile.Read(ref _continuesFrom) is var from && from != ulong.MaxValue && _acknowledged >= from, cancellationToken);

    /// <summary>Runs until the connection ends: by <paramref name="cancellationToken"/>, or with a
    /// <see cref="ReplicationRefusedException"/> saying what was wrong.</summary>
    public async Task RunAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        channel.CompressOutgoing = Compress;
        lock (_gate)
        {
            _channel = channel;
        }

        try
        {
            await RunOnAsync(channel, cancellationToken);
        }
        finally
        {
            lock (_gate)
            {
                _channel = null;
                _bytesSentBefore += channel.PayloadBytesSent;
                _bytesSentCompressedBefore += channel.CompressedBytesSent;
            }
        }
    }

    private async Task RunOnAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        var (generation, applied) = ReplicationMessage.ReadResume(await channel.ReceiveAsync(cancellationToken));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bool continues;
        lock (_gate)
        {
            _connected = true;
            _connectionStop = stop;
            _resyncDemanded = null;
            continues = applied >= _continuesFrom && applied <= _journal.LastSequence && (resync is null || generation == resync.Generation);
        }

        try
        {
            await SendAsync(channel, continues, generation, applied, stop.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && _resyncDemanded is { } reason)
        {
            throw new ReplicationRefusedException(reason);
        }
        finally
        {
            ManifestAsked? unanswered;
            lock (_gate)
            {
                _connected = false;
                _connectionStop = null;
                unanswered = _manifestAsked;
                _manifestAsked = null;
            }

            unanswered?.Fail(new InvalidOperationException("the replication connection ended before the replica's manifest arrived"));
        }
    }

    private async Task SendAsync(ReplicationChannel channel, bool continues, DataGeneration generation, ulong applied, CancellationToken cancellationToken)
    {
        // A verify's request goes only where the replica stands at a cut: where it continues, or after the resync's.
        var atCut = continues;
        if (continues)
        {
            Advance(applied, visible: true);
            Sent = applied;
        }
        else if (resync is null)
        {
            throw new ReplicationRefusedException(applied > _journal.LastSequence
                ? $"the peer's replica is at record {applied} of generation {generation}, past this journal's last record {_journal.LastSequence}: it went on without this node (a resync in reverse is due)"
                : $"the peer's replica is at record {applied} of generation {generation}, before what this journal continues: a difference resync is due");
        }
        else
        {
            Sent = await ResyncAsync(channel, resync, generation, applied, cancellationToken) - 1;
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var acknowledgements = FollowAcknowledgementsAsync(channel, stop.Token);
        ulong urgentSent = 0;
        try
        {
            while (true)
            {
                var first = true;
                if (Volatile.Read(ref _urgent) is var soon && soon > urgentSent && soon > Sent)
                {
                    // A barrier's cut about to go: asked for before it, so the peer writes it to its log as it arrives.
                    urgentSent = soon;
                    await channel.SendAsync(ReplicationMessage.AcknowledgeNow(soon), stop.Token);
                }

                foreach (var record in ReadJournalAfter(Sent))
                {
                    // The journal's bytes of the record, after the message's kind: sent as they are, then given back.
                    using var payload = ReplicationMessage.RecordFrom(record);
                    if (first && record.Sequence != Sent + 1)
                    {
                        throw new ReplicationRefusedException($"the peer needs record {Sent + 1}, and this journal starts at record {record.Sequence}: a difference resync is due");
                    }

                    first = false;
                    if (record.Sequence <= _resyncCut)
                    {
                        await PaceResyncAsync(payload.Length, stop.Token);
                    }

                    // Counted as sent before it goes (a barrier benchmark saw the acknowledgement arrive first 9 times in 300:
                    // the connection was dropped as a protocol violation and the barrier waited for the reconnect).
                    Sent = record.Sequence;
                    await channel.SendAsync(payload.Memory, stop.Token);
                    atCut = record.Kind == JournalRecordKind.Cut;
                }

                // A barrier waits for the acknowledgement of a cut sent: asked for, so that the peer makes it durable
                // in its receive log at once instead of acknowledging it once applied.
                var urgent = Volatile.Read(ref _urgent);
                if (urgent > urgentSent && urgent <= Sent)
                {
                    urgentSent = urgent;
                    await channel.SendAsync(ReplicationMessage.AcknowledgeNow(urgent), stop.Token);
                }

                ManifestAsked? asked;
                lock (_gate)
                {
                    asked = _manifestAsked;
                }

                if (asked is { Sent: false } && atCut)
                {
                    // Marked before it goes: the replica's answer may reach the acknowledgement reader before
                    // SendAsync returns here.
                    asked.Sent = true;
                    await channel.SendAsync(ReplicationMessage.VerifyRequest(asked.BlockSize), stop.Token);
                    asked.At.TrySetResult(Sent);
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

    /// <summary>The journal's records after <paramref name="sequence"/>; a damaged one ends the connection with the
    /// reason, after the resync source (if any) is told, so that the next connection resyncs instead of stopping at
    /// the same record forever.</summary>
    private IEnumerable<EncodedRecord> ReadJournalAfter(ulong sequence)
    {
        using var records = _journal.ReadEncodedAfter(sequence, ReplicationMessage.RecordHeadroom).GetEnumerator();
        while (true)
        {
            try
            {
                if (!records.MoveNext())
                {
                    yield break;
                }
            }
            catch (InvalidDataException e)
            {
                if (resync is null)
                {
                    throw new ReplicationRefusedException($"the journal is damaged: {e.Message}");
                }

                lock (_gate)
                {
                    _continuesFrom = ulong.MaxValue;
                }

                resync.JournalDamaged();
                throw new ReplicationRefusedException($"the journal is damaged ({e.Message}): it starts again, and the replica is resynced by the next connection");
            }

            yield return records.Current;
        }
    }

    /// <summary>Counts a resync record's bytes, first waiting as long as <see cref="ResyncBytesPerSecond"/> says
    /// the bytes sent before it should have taken.</summary>
    private async Task PaceResyncAsync(int bytes, CancellationToken cancellationToken)
    {
        var sent = Interlocked.Add(ref _resyncSent, bytes) - bytes;
        if (ResyncBytesPerSecond <= 0)
        {
            return;
        }

        var due = TimeSpan.FromSeconds((double)sent / ResyncBytesPerSecond) - System.Diagnostics.Stopwatch.GetElapsedTime(_resyncStarted);
        if (due > TimeSpan.Zero)
        {
            await Task.Delay(due, cancellationToken);
        }
    }

    /// <summary>Asks the replica what it holds, has the journal record what differs, and returns the first sequence
    /// of those records (announced to the receiver, which applies them from there).</summary>
    private async Task<ulong> ResyncAsync(ReplicationChannel channel, IResyncSource source, DataGeneration generation, ulong applied, CancellationToken cancellationToken)
    {
        Resyncs++;
        // Only what changed while apart when the dirty set says what that is; the paths changed while the replica
        // was answering are asked for in turn (a few rounds at most, then the whole tree).
        bool whole;
        lock (_gate)
        {
            whole = _wholeTreeDemanded;
            _wholeTreeDemanded = false;
        }

        var dirty = !whole && await source.DirtySinceAsync(generation, applied, cancellationToken) is { } paths ? new List<string>(paths) : null;
        IReadOnlyCollection<string>? asking = dirty;
        var manifest = new List<ManifestEntry>();
        ulong first, cut;
        for (var round = 1; ; round++)
        {
            await channel.SendAsync(ReplicationMessage.ResyncRequest(source.BlockSize, asking), cancellationToken);
            manifest.AddRange(await ReceiveManifestAsync(channel, source.BlockSize, cancellationToken));
            var (done, missing) = await source.ResyncAsync(manifest, dirty, applied, cancellationToken);
            if (done is { } result)
            {
                (first, cut) = result;
                LastResyncPaths = dirty?.Count;
                break;
            }

            if (dirty is not null && missing.Count > 0 && round < 3)
            {
                dirty.AddRange(missing);
                asking = missing;
            }
            else
            {
                dirty = null;
                asking = null;
                manifest.Clear();
            }
        }

        lock (_gate)
        {
            _continuesFrom = cut;
            _resyncCut = cut;
            _resyncTotal = _journal.BytesAfter(first - 1) - _journal.BytesAfter(cut);
            Interlocked.Exchange(ref _resyncSent, 0);
            _resyncStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        await channel.SendAsync(ReplicationMessage.ResyncFrom(first), cancellationToken);
        return first;
    }

    private static async Task<List<ManifestEntry>> ReceiveManifestAsync(ReplicationChannel channel, int blockSize, CancellationToken cancellationToken)
    {
        var manifest = new List<ManifestEntry>();
        while (true)
        {
            var payload = await channel.ReceiveAsync(cancellationToken);
            if (ReplicationMessage.KindOf(payload) != ReplicationMessageKind.ManifestPart)
            {
                var count = ReplicationMessage.ReadManifestEnd(payload);
                if (count != (ulong)manifest.Count)
                {
                    throw new ReplicationRefusedException($"the peer's manifest ended saying {count} entries, and {manifest.Count} arrived");
                }

                return manifest;
            }

            manifest.AddRange(TreeManifest.Decode(payload, blockSize));
        }
    }

    private async Task FollowAcknowledgementsAsync(ReplicationChannel channel, CancellationToken cancellationToken)
    {
        while (true)
        {
            var payload = await channel.ReceiveAsync(cancellationToken);
            var kind = ReplicationMessage.KindOf(payload);
            if (kind is ReplicationMessageKind.ManifestPart or ReplicationMessageKind.ManifestEnd)
            {
                Manifest(payload, kind);
                continue;
            }

            if (kind == ReplicationMessageKind.Applied)
            {
                var applied = ReplicationMessage.ReadApplied(payload);
                if (applied > Sent)
                {
                    throw new ReplicationRefusedException($"the peer applied record {applied}, and only {Sent} were sent");
                }

                Advance(applied, visible: true);
                continue;
            }

            var sequence = ReplicationMessage.ReadAcknowledged(payload);
            if (sequence > Sent)
            {
                throw new ReplicationRefusedException($"the peer acknowledged record {sequence}, and only {Sent} were sent");
            }

            Advance(sequence);
        }
    }

    /// <summary>A part of the manifest a verify asked for.</summary>
    private void Manifest(byte[] payload, ReplicationMessageKind kind)
    {
        ManifestAsked? asked;
        lock (_gate)
        {
            asked = _manifestAsked;
        }

        if (asked is not { Sent: true })
        {
            throw new ReplicationRefusedException("the peer sent a manifest nobody asked for");
        }

        if (kind == ReplicationMessageKind.ManifestPart)
        {
            asked.Entries.AddRange(TreeManifest.Decode(payload, asked.BlockSize));
            return;
        }

        var count = ReplicationMessage.ReadManifestEnd(payload);
        if (count != (ulong)asked.Entries.Count)
        {
            throw new ReplicationRefusedException($"the peer's manifest ended saying {count} entries, and {asked.Entries.Count} arrived");
        }

        lock (_gate)
        {
            _manifestAsked = null;
        }

        asked.Manifest.TrySetResult(asked.Entries);
    }

    /// <param name="visible">Applied in the replica (which implies durable), not only durable.</param>
    private void Advance(ulong sequence, bool visible = false)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            var moved = false;
            if (visible && (sequence > _applied || _applied == 0))
            {
                _applied = sequence;
                moved = true;
            }

            if (sequence <= _acknowledged && _acknowledged != 0)
            {
                if (!moved)
                {
                    return;
                }

                changed = _acknowledgedChanged;
                _acknowledgedChanged = New();
                changed.TrySetResult();
                return;
            }

            _acknowledged = sequence;
            while (_unacknowledged.First is { } oldest && oldest.Value.Last <= sequence)
            {
                _unacknowledged.RemoveFirst();
            }

            changed = _acknowledgedChanged;
            _acknowledgedChanged = New();
        }

        changed.TrySetResult();
    }

    public void Dispose() => _appended.Dispose();

    private static TaskCompletionSource New() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
