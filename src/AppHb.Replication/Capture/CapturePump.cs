using System.Threading.Channels;
using AppHb.Linux.Files;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Capture;

/// <summary>The active node's capture running: the kernel's notifications for the replicated tree are journaled a
/// batch (one cut) at a time, and the sender is told. It also carries the <b>barrier</b>: <see cref="BarrierAsync"/>
/// returns once every change made before the call is durable on the peer. A change made before the call may still be
/// in the kernel's queue, unread; so the barrier touches a file of its own in the tree, and since the kernel keeps one
/// order for the whole tree, once that file's notification is read everything before it was read too, and journaled
/// in the same batch or an earlier one: the barrier then waits for the peer's acknowledgement of that batch.</summary>
public sealed class CapturePump : IAsyncDisposable
{
    /// <summary>How the barrier's own files at the root of the tree begin (then the barrier's number); never replicated.</summary>
    public const string BarrierFilePrefix = ".apphb-barrier-";

    /// <summary>Whether a path of the tree is the barrier's, not the application's.</summary>
    public static bool IsBarrierFile(string path) => path.StartsWith(BarrierFilePrefix, StringComparison.Ordinal) && !path.Contains('/', StringComparison.Ordinal);

    private readonly string _root;
    private readonly Journaler _journaler;
    private readonly JournalFile _journal;
    private readonly ReplicationSender _sender;
    private readonly Channel<TreeChange> _changes = Channel.CreateUnbounded<TreeChange>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TreeWatcher _watcher;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pumping;
    private readonly Lock _gate = new();
    private readonly List<(long Ticket, TaskCompletionSource<ulong> Captured)> _barriers = [];
    private long _nextTicket;

    private CapturePump(string root, Journaler journaler, JournalFile journal, ReplicationSender sender)
    {
        _root = root;
        _journaler = journaler;
        _journal = journal;
        _sender = sender;
        _watcher = TreeWatcher.Start(root, change => _changes.Writer.TryWrite(change));
        _pumping = Task.Run(() => PumpAsync(_stop.Token));
    }

    /// <summary>Watches <paramref name="root"/>, first journals whatever differs from what the peer has (the
    /// journaler's knowledge: everything, for a new peer), then every change.</summary>
    public static CapturePump Start(string root, Journaler journaler, JournalFile journal, ReplicationSender sender)
    {
        ArgumentNullException.ThrowIfNull(journaler);
        ArgumentNullException.ThrowIfNull(sender);
        var pump = new CapturePump(Path.GetFullPath(root), journaler, journal ?? throw new ArgumentNullException(nameof(journal)), sender);
        // After the watch is set: a change made during the scan is seen by both, never by neither.
        pump.CompareWholeTree();
        return pump;
    }

    /// <summary>Has the next batch compare the whole tree with what the peer has, as a queue overflow does: for when
    /// changes may have been missed (a start, a capture restarted, an overflow reported elsewhere).</summary>
    public void CompareWholeTree() => _changes.Writer.TryWrite(new TreeChange(TreeChangeKind.Overflow, string.Empty, IsDirectory: true));

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
        while (await _changes.Reader.WaitToReadAsync(cancellationToken))
        {
            batch.Clear();
            long seen = 0;
            while (_changes.Reader.TryRead(out var change))
            {
                if (change.Kind == TreeChangeKind.Created && IsBarrierFile(change.Path)
                    && long.TryParse(change.Path.AsSpan(BarrierFilePrefix.Length), System.Globalization.CultureInfo.InvariantCulture, out var ticket))
                {
                    seen = Math.Max(seen, ticket);
                }

                batch.Add(change);
            }

            if (_journaler.Journal(batch) > 0)
            {
                _sender.Appended();
            }

            if (seen > 0)
            {
                // The barrier's file was read, and with it everything made before it (barriers are numbered in the
                // order their files are made, so every earlier one is through too).
                var journaled = _journal.LastSequence;
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

    public async ValueTask DisposeAsync()
    {
        _watcher.Dispose();
        _changes.Writer.TryComplete();
        await _stop.CancelAsync();
        try
        {
            await _pumping;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
