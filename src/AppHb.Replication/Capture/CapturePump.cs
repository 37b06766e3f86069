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
    /// <summary>How the barrier's own files at the root of the tree begin (then the barrier's number); never replicated.</summary>
    public const string BarrierFilePrefix = ".apphb-barrier-";

    /// <summary>Whether a path of the tree is the barrier's, not the application's.</summary>
    public static bool IsBarrierFile(string path) => path.StartsWith(BarrierFilePrefix, StringComparison.Ordinal) && !path.Contains('/', StringComparison.Ordinal);

    private readonly string _root;
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

    private abstract record Input;

    private sealed record Changed(TreeChange Change) : Input;

    private sealed record ResyncAsked(IReadOnlyList<ManifestEntry> PeerHas, TaskCompletionSource<(ulong, ulong)> Done) : Input;

    private readonly long _journalLimit;

    private CapturePump(string root, Journaler journaler, JournalFile journal, long journalLimit)
    {
        _journalLimit = journalLimit;
        _root = root;
        _journaler = journaler;
        _journal = journal;
        _sender = new ReplicationSender(journal, this);
        _watcher = TreeWatcher.Start(root, change => _inputs.Writer.TryWrite(new Changed(change)));
        _pumping = Task.Run(() => PumpAsync(_stop.Token));
    }

    /// <summary>Watches <paramref name="root"/> and journals every change once a first difference resync (asked by
    /// the peer's first connection) has compared the tree with its replica.</summary>
    /// <param name="journalLimit">The journal's size limit in bytes: past it, the journal starts again from its last
    /// record after a batch, and a replica behind that is resynced instead of replayed.</param>
    public static CapturePump Start(string root, Journaler journaler, JournalFile journal, long journalLimit = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(journaler);
        return new CapturePump(Path.GetFullPath(root), journaler, journal ?? throw new ArgumentNullException(nameof(journal)), journalLimit);
    }

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

    public async Task<(ulong First, ulong Cut)> ResyncAsync(IReadOnlyList<ManifestEntry> peerHas, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<(ulong, ulong)>(TaskCreationOptions.RunContinuationsAsynchronously);
        ObjectDisposedException.ThrowIf(!_inputs.Writer.TryWrite(new ResyncAsked(peerHas, done)), this);

        return await done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Returns once every change made under the tree before this call is applied and durable on the peer.</summary>
    /// <exception cref="TimeoutException">The peer did not confirm within <paramref name="timeout"/> (unreachable,
    /// or behind): never a false success.</exception>
    public async Task BarrierAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var captured = new TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously);
        long ticket;
        lock (_gate)
        {
            ticket = ++_nextTicket;
            _barriers.Add((ticket, captured));
        }

        var file = Path.Combine(_root, BarrierFilePrefix + ticket.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await File.WriteAllBytesAsync(file, [], cancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var sequence = await captured.Task.WaitAsync(deadline.Token);
            await _sender.WaitAcknowledgedAsync(sequence, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the peer did not confirm the changes before this barrier within {timeout.TotalSeconds:0.###} s (it acknowledged up to record {_sender.Acknowledged}, the journal holds {_journal.LastSequence}): it is unreachable or behind; nothing is confirmed");
        }
        finally
        {
            lock (_gate)
            {
                _barriers.RemoveAll(b => b.Ticket == ticket);
            }

            File.Delete(file);
        }
    }

    private async Task PumpAsync(CancellationToken cancellationToken)
    {
        var batch = new List<TreeChange>();
        while (await _inputs.Reader.WaitToReadAsync(cancellationToken))
        {
            long seen = 0;
            while (_inputs.Reader.TryRead(out var input))
            {
                if (input is ResyncAsked resync)
                {
                    // In order: what was read before the request is journaled first (against the old knowledge).
                    Journal(batch);
                    try
                    {
                        var result = _journaler.Resync(resync.PeerHas);
                        _compared = true;
                        _sender.Journaled(result.Cut);
                        resync.Done.TrySetResult(result);
                    }
                    catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
                    {
                        resync.Done.TrySetException(e);
                    }

                    continue;
                }

                var change = ((Changed)input).Change;
                if (change.Kind == TreeChangeKind.Created && IsBarrierFile(change.Path)
                    && long.TryParse(change.Path.AsSpan(BarrierFilePrefix.Length), System.Globalization.CultureInfo.InvariantCulture, out var ticket))
                {
                    seen = Math.Max(seen, ticket);
                }

                batch.Add(change);
            }

            Journal(batch);
            if (seen > 0)
            {
                // The barrier's file was read, and with it everything made before it (barriers are numbered in the
                // order their files are made, so every earlier one is through too). Before the first resync nothing
                // is journaled: the resync's cut, after this sequence, covers the barrier.
                var journaled = _compared ? _journal.LastSequence : _journal.LastSequence + 1;
                lock (_gate)
                {
                    foreach (var (_, captured) in _barriers.Where(b => b.Ticket <= seen))
                    {
                        captured.TrySetResult(journaled);
                    }
                }
            }
        }
    }

    private void Journal(List<TreeChange> batch)
    {
        if (_compared && batch.Count > 0 && _journaler.Journal(batch) > 0)
        {
            _sender.Journaled(_journal.LastSequence);
        }

        batch.Clear();
        KeepToLimit();
    }

    /// <summary>Past the size limit, the journal starts again from its last record: at once when the peer has every
    /// record (nothing is lost to it), or when no peer is connected (it is away longer than the journal holds, and is
    /// resynced when it returns); a connected peer still receiving keeps what it needs.</summary>
    private void KeepToLimit()
    {
        if (_journal.Length > _journalLimit && (_sender.Acknowledged >= _journal.LastSequence || !_sender.Connected))
        {
            _journal.Restart();
            _sender.JournalRestarted(_journal.LastSequence);
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

        _stop.Dispose();
        _sender.Dispose();
    }
}
