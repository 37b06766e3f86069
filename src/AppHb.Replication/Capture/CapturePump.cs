using System.Threading.Channels;
using AppHb.Linux.Files;
using AppHb.Core.Cluster;
using AppHb.Replication.Journal;
using AppHb.Replication.Resync;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Capture;

/// <summary>The active node's capture running: the kernel's notifications for the replicated tree are journaled a
/// batch (one cut) at a time, and the sender is told. It also carries the <b>barrier</b>: <see cref="BarrierAsync"/>
/// returns once every change made before the call is durable on the peer. A change made before the call may still be
/// in the kernel's queue, unread; so the barrier touches a file of its own in the tree, and since the kernel keeps one
/// order for the whole tree, once that file's notification is read everything before it was read too, and journaled
/// in the same batch or an earlier one: the barrier then waits for the peer's acknowledgement of that batch.
/// <para>It is also the <see cref="Sender"/>'s <see cref="IResyncSource"/>: a difference resync is journaled in order
/// with the batches. Until the first resync since the start nothing is journaled: the journaler does not know what
/// the peer has, and that resync compares the whole tree anyway.</para></summary>
public sealed class CapturePump : IResyncSource, IAsyncDisposable
{
    /// <summary>How the barrier's own files begin (then the barrier's number), in the scope's
    /// <see cref="ReplicatedScope.BarrierDirectories"/>; never replicated.</summary>
    public const string BarrierFilePrefix = ".apphb-barrier-";

    private readonly ReplicatedScope _scope;
    private readonly Journaler _journaler;
    private readonly JournalFile _journal;
    private readonly ReplicationSender _sender;
    private readonly Channel<Input> _inputs = Channel.CreateUnbounded<Input>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TreeWatcher _watcher;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pumping;
    private readonly Lock _gate = new();
    private readonly List<(long Ticket, TaskCompletionSource<ulong> Captured)> _barriers = [];
    private long _nextTicket;
    private volatile bool _compared;
    /// <summary>While a verify runs: every path the changes read by the pump named. The journal's records do not
    /// name a path made and gone again before the journaler read it, yet the verify's walk may have seen it, and
    /// it may be there again by the end (a CI run reported such a file as missing on the replica).</summary>
    private HashSet<string>? _namedDuringVerify;

    private abstract record Input;

    private sealed record Changed(TreeChange Change) : Input;

    private sealed record Damaged : Input;

    private sealed record ResyncAsked(IReadOnlyList<ManifestEntry> PeerHas, IReadOnlyCollection<string>? Dirty, ulong Applied,
        TaskCompletionSource<((ulong First, ulong Cut)? Done, IReadOnlyList<string> Missing)> Result) : Input;

    private sealed record DirtyAsked(DataGeneration Generation, ulong Applied, TaskCompletionSource<IReadOnlyList<string>?> Result) : Input;

    private readonly long _journalLimit;

    private CapturePump(Journaler journaler, JournalFile journal, long journalLimit, long resyncBytesPerSecond)
    {
        _journalLimit = journalLimit;
        _scope = journaler.Scope;
        _journaler = journaler;
        _journal = journal;
        _sender = new ReplicationSender(journal, this) { ResyncBytesPerSecond = resyncBytesPerSecond };
        _watcher = TreeWatcher.Start(_scope.Root, change =>
        {
            if (change.Kind == TreeChangeKind.Overflow)
            {
                Interlocked.Increment(ref _overflows);
            }

            _inputs.Writer.TryWrite(new Changed(change));
        }, _scope.Watches);
        _pumping = Task.Run(() => PumpAsync(_stop.Token));
    }

    /// <summary>Watches what the journaler's scope replicates (<paramref name="root"/>, when it is the whole root)
    /// and journals every change once a first difference resync (asked by the peer's first connection) has compared
    /// the tree with its replica.</summary>
    /// <param name="journalLimit">The journal's size limit in bytes: past it, the journal starts again from its last
    /// record after a batch, and a replica behind that is resynced instead of replayed.</param>
    /// <param name="resyncBytesPerSecond">The difference resync's rate limit (<see cref="ReplicationSender.ResyncBytesPerSecond"/>; 0: none).</param>
    public static CapturePump Start(string root, Journaler journaler, JournalFile journal, long journalLimit = long.MaxValue, long resyncBytesPerSecond = 0)
    {
        ArgumentNullException.ThrowIfNull(journaler);
        if (Path.GetFullPath(root).TrimEnd('/') is var full && full != journaler.Scope.Root.TrimEnd('/'))
        {
            throw new ArgumentException($"the capture's root {full} is not its journaler's ({journaler.Scope.Root})", nameof(root));
        }

        foreach (var directory in journaler.Scope.BarrierDirectories)
        {
            RemoveBarrierFiles(journaler.Scope.Full(directory));
        }

        return new CapturePump(journaler, journal ?? throw new ArgumentNullException(nameof(journal)), journalLimit, resyncBytesPerSecond);
    }

    /// <summary>Watches what <paramref name="journaler"/>'s scope replicates (<see cref="Start(string, Journaler, JournalFile, long, long)"/>).</summary>
    public static CapturePump Start(Journaler journaler, JournalFile journal, long journalLimit = long.MaxValue, long resyncBytesPerSecond = 0) =>
        Start((journaler ?? throw new ArgumentNullException(nameof(journaler))).Scope.Root, journaler, journal, journalLimit, resyncBytesPerSecond);

    /// <summary>Barrier files are this pump's and never replicated: one a crash left between its write and its
    /// deletion would stay in the application's directory for good (and differ from the peer's).</summary>
    private static void RemoveBarrierFiles(string root)
    {
        if (!Directory.Exists(root))
        {
            return;
        }

        foreach (var file in Directory.EnumerateFiles(root, BarrierFilePrefix + "*"))
        {
            File.Delete(file);
        }
    }

    private long _overflows;

    /// <summary>Times the kernel's notification queue overflowed (each costs a comparison of the whole tree).</summary>
    public long CaptureOverflows => Interlocked.Read(ref _overflows);

    /// <summary>Times the journal was started again for its size limit.</summary>
    public long JournalRestarts { get; private set; }

    /// <summary>What runs the replication connections of this pump's journal (<see cref="ReplicationSender.RunAsync"/>).</summary>
    public ReplicationSender Sender => _sender;

    /// <summary>Whether a difference resync has compared the tree with the replica since the start (before it,
    /// changes are not journaled).</summary>
    public bool Compared => _compared;

    /// <summary>Ends when the pump stops, or faults with what stopped it (the journal's disk refused).</summary>
    public Task Completion => _pumping;

    public int BlockSize => _journaler.BlockSize;

    public DataGeneration Generation => _journaler.Generation;

    /// <summary>Has the next batch compare the whole tree with what the peer has, as a queue overflow does: for when
    /// changes may have been missed (a capture restarted, an overflow reported elsewhere).</summary>
    public void CompareWholeTree() => _inputs.Writer.TryWrite(new Changed(new TreeChange(TreeChangeKind.Overflow, string.Empty, IsDirectory: true)));

    public void JournalDamaged() => _inputs.Writer.TryWrite(new Damaged());

    /// <summary>Times the journal was found damaged and started again (the replica resynced).</summary>
    public long JournalDamages { get; private set; }

    public async Task<IReadOnlyList<string>?> DirtySinceAsync(DataGeneration generation, ulong applied, CancellationToken cancellationToken)
    {
        var result = new TaskCompletionSource<IReadOnlyList<string>?>(TaskCreationOptions.RunContinuationsAsynchronously);
        ObjectDisposedException.ThrowIf(!_inputs.Writer.TryWrite(new DirtyAsked(generation, applied, result)), this);
        return await result.Task.WaitAsync(cancellationToken);
    }

    public async Task<((ulong First, ulong Cut)? Done, IReadOnlyList<string> Missing)> ResyncAsync(IReadOnlyList<ManifestEntry> peerHas, IReadOnlyCollection<string>? dirty, ulong applied, CancellationToken cancellationToken)
    {
        var result = new TaskCompletionSource<((ulong First, ulong Cut)? Done, IReadOnlyList<string> Missing)>(TaskCreationOptions.RunContinuationsAsynchronously);
        ObjectDisposedException.ThrowIf(!_inputs.Writer.TryWrite(new ResyncAsked(peerHas, dirty, applied, result)), this);
        return await result.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Returns once every change made under the tree before this call is durable on the peer (the
    /// application's commit barrier: a crash of either node from then on loses none of it); with
    /// <paramref name="visible"/>, once it is also applied, visible in the peer's replica.</summary>
    /// <exception cref="TimeoutException">The peer did not confirm within <paramref name="timeout"/> (unreachable,
    /// or behind): never a false success.</exception>
    public async Task BarrierAsync(TimeSpan timeout, CancellationToken cancellationToken, bool visible = false)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var sequence = await JournaledAsync(deadline.Token);
            if (visible)
            {
                await _sender.WaitAppliedAsync(sequence, deadline.Token);
            }
            else
            {
                await _sender.WaitAcknowledgedAsync(sequence, deadline.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the peer did not confirm the changes before this barrier within {timeout.TotalSeconds:0.###} s (it acknowledged up to record {_sender.Acknowledged} and applied up to {_sender.Applied}, the journal holds {_journal.LastSequence}): it is unreachable or behind; nothing is confirmed");
        }
    }

    /// <summary>Returns the sequence of a record at or after which every change made under the tree before this
    /// call is journaled (the barrier's first half: the kernel's notifications read, the journal synced).</summary>
    private async Task<ulong> JournaledAsync(CancellationToken cancellationToken)
    {
        var captured = new TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously);
        long ticket;
        lock (_gate)
        {
            ticket = ++_nextTicket;
            _barriers.Add((ticket, captured));
        }

        string? file = null;
        try
        {
            // The first of the scope's barrier directories there now (a member's may be moved away or not made yet).
            var name = BarrierFilePrefix + ticket.ToString(System.Globalization.CultureInfo.InvariantCulture);
            foreach (var directory in _scope.BarrierDirectories)
            {
                var candidate = Path.Combine(_scope.Full(directory), name);
                try
                {
                    // Made and closed at once, on this thread (an empty file; an asynchronous write cost a tenth of a
                    // millisecond of thread hops on the barrier's path).
                    File.OpenHandle(candidate, FileMode.Create, FileAccess.Write).Dispose();
                    file = candidate;
                    break;
                }
                catch (IOException) when (directory.Length > 0 && !Directory.Exists(_scope.Full(directory)))
                {
                    // Not a directory (now): the next.
                }
            }

            return await captured.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (_gate)
            {
                _barriers.RemoveAll(b => b.Ticket == ticket);
            }

            if (file is not null)
            {
                File.Delete(file);
            }
        }
    }

    /// <summary>`apphbctl replication verify`: compares the tree with the connected replica by block hashes and
    /// returns where they differ. The replica is walked at a cut (<see cref="ReplicationSender.AskReplicaManifest"/>)
    /// while writers go on here; a path the journal changed after that cut, up to every change made before this
    /// tree's walk ended, or that a change read meanwhile named (a file made and gone again before the journaler
    /// read it has no record, yet the walk may have seen it), is left out of the comparison (counted as changing),
    /// and a difference is checked again against the file as it is at the end, so that a write under way is never
    /// reported as a difference.</summary>
    /// <exception cref="InvalidOperationException">No replica connected, a verify running, the connection ended,
    /// or the journal started again during the verify (the message says which; nothing was compared).</exception>
    public async Task<VerifyResult> VerifyAsync(CancellationToken cancellationToken)
    {
        if (!_compared)
        {
            throw new InvalidOperationException("the replica has not been compared with this tree since apphbd started (its first resync is under way or not begun): there is nothing to verify yet");
        }

        // Collected from before the cut is chosen: a superset of what changed after it, which only leaves out more.
        var named = new HashSet<string>(StringComparer.Ordinal);
        lock (_gate)
        {
            _namedDuringVerify = named;
        }

        HashSet<string> changing;
        List<ManifestEntry> ours;
        IReadOnlyList<ManifestEntry> theirs;
        ulong at;
        try
        {
            var (atTask, manifestTask) = _sender.AskReplicaManifest(BlockSize);
            at = await atTask.WaitAsync(cancellationToken);
            ours = await Task.Run(() => TreeManifest.Walk(_scope, BlockSize).ToList(), cancellationToken);
            theirs = await manifestTask.WaitAsync(cancellationToken);
            var through = await JournaledAsync(cancellationToken);
            changing = ChangedAfter(at, through);
        }
        finally
        {
            lock (_gate)
            {
                _namedDuringVerify = null;
            }
        }

        changing.UnionWith(named);
        // At or under a path that changed: a directory renamed or deleted changes all under it, the root (a queue
        // overflow) everything.
        bool Changing(string path) => changing.Contains(string.Empty) || JournalPath.IsAtOrUnderAny(path, changing);

        var compared = ours.Where(e => !Changing(e.Path)).ToList();
        var replica = theirs.Where(e => !_journaler.IsExcluded(e.Path) && !Changing(e.Path)).ToDictionary(e => e.Path, StringComparer.Ordinal);
        var differences = TreeComparison.Compare(compared, replica.Values)
            .Where(d => StillDiffers(d.Path, replica.GetValueOrDefault(d.Path)))
            .ToList();
        return new VerifyResult(at, compared.Count, ours.Count - compared.Count, differences);
    }

    /// <summary>The paths the journal's records after <paramref name="at"/> up to <paramref name="through"/> name
    /// (both paths of a rename).</summary>
    private HashSet<string> ChangedAfter(ulong at, ulong through)
    {
        var changed = new HashSet<string>(StringComparer.Ordinal);
        var expected = at + 1;
        foreach (var record in _journal.ReadAfter(at))
        {
            if (record.Sequence != expected)
            {
                throw new InvalidOperationException($"the journal started again during the verify (it holds record {record.Sequence}, not {expected}): what changed meanwhile is unknown; verify again");
            }

            if (record.Sequence > through)
            {
                break;
            }

            expected++;
            if (record is not CutRecord)
            {
                changed.Add(record.Path);
            }

            if (record is RenameRecord rename)
            {
                changed.Add(rename.NewPath);
            }
        }

        if (expected <= through)
        {
            throw new InvalidOperationException($"the journal started again during the verify (record {expected} is gone): what changed meanwhile is unknown; verify again");
        }

        return changed;
    }

    /// <summary>Whether a difference holds against the tree as it is now: the walk may have read a path while it was
    /// being written, or made and removed within one batch (so that no record names it).</summary>
    private bool StillDiffers(string path, ManifestEntry? copy)
    {
        var now = TreeManifest.Entry(_scope.Root, path, BlockSize);
        return now is null || copy is null ? (now is null) != (copy is null) : TreeComparison.Differs(now, copy) is not null;
    }

    private async Task PumpAsync(CancellationToken cancellationToken)
    {
        var batch = new List<TreeChange>();
        while (await _inputs.Reader.WaitToReadAsync(cancellationToken))
        {
            long seen = 0;
            while (_inputs.Reader.TryRead(out var input))
            {
                if (input is Damaged)
                {
                    // What was read before is journaled first; then nothing of the journal is kept but its last
                    // record's number (the sender already resyncs the next connection).
                    Journal(batch);
                    _sender.DropJournal(_journal);
                    JournalDamages++;
                    continue;
                }

                if (input is DirtyAsked asked)
                {
                    // In order: what was read before is journaled first, so that the dirty set names it.
                    Journal(batch);
                    asked.Result.TrySetResult(_compared ? _journaler.DirtySince(asked.Generation, asked.Applied) : null);
                    continue;
                }

                if (input is ResyncAsked resync)
                {
                    // In order: what was read before the request is journaled first (against the old knowledge).
                    Journal(batch);
                    try
                    {
                        var done = _journaler.TryResync(resync.PeerHas, resync.Dirty, resync.Applied, out var missing);
                        if (done is { } result)
                        {
                            _compared = true;
                            _sender.Journaled(result.Cut);
                        }

                        resync.Result.TrySetResult((done, missing));
                    }
                    catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
                    {
                        resync.Result.TrySetException(e);
                    }

                    continue;
                }

                var change = ((Changed)input).Change;
                lock (_gate)
                {
                    // An overflow names the root (""): what changed is unknown, so everything is left out.
                    _namedDuringVerify?.Add(change.Path);
                    if (change.NewPath is { } newPath)
                    {
                        _namedDuringVerify?.Add(newPath);
                    }
                }

                if (change.Kind == TreeChangeKind.Created && _scope.IsBarrierFile(change.Path)
                    && long.TryParse(change.Path.AsSpan(change.Path.LastIndexOf('/') + 1 + BarrierFilePrefix.Length), System.Globalization.CultureInfo.InvariantCulture, out var ticket))
                {
                    seen = Math.Max(seen, ticket);
                }

                batch.Add(change);
            }

            var told = false;
            void Captured(ulong journaled)
            {
                told = true;
                // Before the sender is told of the cut: it asks the peer to acknowledge it at once, with it (or now, for
                // a cut sent already: the barrier's batch held nothing new).
                _sender.AcknowledgeSoon(journaled);
                lock (_gate)
                {
                    foreach (var (_, captured) in _barriers.Where(b => b.Ticket <= seen))
                    {
                        captured.TrySetResult(journaled);
                    }
                }
            }

            // The barriers go on as soon as the batch's last cut is whole, while it is synced here: what they promise
            // is the peer's durability (a record the peer holds and this journal lost to a power cut costs nothing:
            // every start resyncs, and the journal's numbers no longer continue the peer's position).
            Journal(batch, seen > 0 ? Captured : null);
            if (seen > 0 && !told)
            {
                // The barrier's file was read, and with it everything made before it (barriers are numbered in the
                // order their files are made, so every earlier one is through too), and the batch journaled nothing:
                // the last cut sent covers it. Before the first resync nothing is journaled: the resync's cut, after
                // this sequence, covers the barrier.
                Captured(_compared ? _journal.LastSequence : _journal.LastSequence + 1);
            }
        }
    }

    /// <param name="lastCutPublished">Told the batch's last cut once it is whole, before it is synced (not when the
    /// batch journals nothing).</param>
    private void Journal(List<TreeChange> batch, Action<ulong>? lastCutPublished = null)
    {
        if (_compared && batch.Count > 0)
        {
            // Each cut goes to the sender as soon as it is whole, while it is synced here.
            _journaler.Journal(batch, _sender.Journaled, lastCutPublished);
        }

        _journaler.Acknowledged(_sender.Acknowledged);

        batch.Clear();
        KeepToLimit();
    }

    /// <summary>Past the size limit, the journal starts again with only what the peer still needs
    /// (<see cref="ReplicationSender.RestartJournal"/>): the records a connected peer has not acknowledged, or, with
    /// no peer connected (resynced when it returns, not continued), the last one.</summary>
    private void KeepToLimit()
    {
        // Past the limit, and with something to drop: a connected peer's backlog is copied into the new journal only
        // while it is at most half the limit (a larger one waits in the journal until the peer catches up, rather
        // than being copied again at every batch).
        if (_journal.Length > _journalLimit && (!_sender.Connected || _journal.BytesAfter(_sender.Acknowledged) <= _journalLimit / 2))
        {
            _sender.RestartJournal(_journal);
            JournalRestarts++;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _watcher.Dispose();
        _inputs.Writer.TryComplete();
        await _stop.CancelAsync();
        try
        {
            await _pumping;
        }
        catch (OperationCanceledException)
        {
        }

        // A barrier whose file the pump will never read fails now rather than at its timeout, and deletes its file
        // (a two-node run found one left in the standby's directory after a failback).
        lock (_gate)
        {
            foreach (var (_, captured) in _barriers)
            {
                captured.TrySetException(new TimeoutException("replication stopped on this node before the changes before this barrier were journaled: nothing is confirmed"));
            }
        }

        _stop.Dispose();
        _sender.Dispose();
    }
}

/// <summary>What a verify found: the replica at cut <paramref name="At"/> compared with the tree, entry by entry
/// (<paramref name="Compared"/>), leaving out <paramref name="Changing"/> entries changed meanwhile.</summary>
public sealed record VerifyResult(ulong At, int Compared, int Changing, IReadOnlyList<TreeDifference> Differences);
