using System.Net;
using System.Threading.Channels;
using AppHb.Cluster.Hosting;
using AppHb.Core.Cluster;
using AppHb.Core.Events;
using AppHb.Daemon.Configuration;
using AppHb.Protocol;
using AppHb.Replication.Apply;
using AppHb.Replication.Capture;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Cluster;

/// <summary>Replication of the group's data (apphbd.yaml's <c>replication:</c>) as the pair's roles say: on the
/// active node the capture journals the directory and sends it over the dedicated link; on the standby the replica
/// listens and applies; on a node taking over, neither (the old active may still be sending). Started before the pair
/// and stopped after it, so that an orderly stop's hand-over still has replication to drain (it attaches when the
/// pair opens).</summary>
internal sealed class ReplicationHost(ApphbdOptions options, ClusterHost cluster, EventStream events, TimeProvider time,
    ILogger<ReplicationHost> logger) : IHostedService, IAsyncDisposable
{
    private const string NotReplicating = "this node replicates nothing: apphbd.yaml has no replication section";
    /// <summary>The pair's roles as they change; null: start the current side again (its capture failed).</summary>
    private readonly Channel<ClusterRole?> _roles = Channel.CreateUnbounded<ClusterRole?>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;
    private Task _running = Task.CompletedTask;
    private volatile Side? _side;
    /// <summary>Done while no replica side runs here (the group may write the replicated directory).</summary>
    private volatile TaskCompletionSource _replicaStopped = Done();
    private volatile string? _lastEnded;
    private long _connections;
    private long _resyncsOfEarlierSources;

    /// <summary>Difference resyncs this node started as the source since apphbd started.</summary>
    private long Resyncs => Interlocked.Read(ref _resyncsOfEarlierSources) + (_side is Source s ? s.Pump.Sender.Resyncs : 0);

    /// <summary>What runs for the current role, stopped as a whole when the role changes.</summary>
    private abstract class Side(CancellationTokenSource stop)
    {
        public CancellationTokenSource Stop { get; } = stop;

        public Task Link { get; set; } = Task.CompletedTask;

        public abstract string Name { get; }

        public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class Source(CancellationTokenSource stop, JournalFile journal, CapturePump pump) : Side(stop)
    {
        public JournalFile Journal { get; } = journal;

        public CapturePump Pump { get; } = pump;

        public override string Name => "source";

        public override async ValueTask DisposeAsync()
        {
            await Pump.DisposeAsync();
            Journal.Dispose();
        }
    }

    private sealed class Replica(CancellationTokenSource stop, CutApplier applier, ReplicationReceiver receiver) : Side(stop)
    {
        public CutApplier Applier { get; } = applier;

        public ReplicationReceiver Receiver { get; } = receiver;

        public override string Name => "replica";
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Replication is { Synchronous: true })
        {
            cluster.HandOverCheck = ConfirmedForHandOverAsync;
        }

        cluster.Opened += Attach;
        if (cluster.Pair is { } open)
        {
            Attach(open);
        }

        return Task.CompletedTask;
    }

    private static TaskCompletionSource Done()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        done.SetResult();
        return done;
    }

    private void Attach(PairHost pair)
    {
        // The group starts once the replica side has stopped: its last cut, acknowledged once durable, may still be
        // carried out into the directory the group is about to write.
        cluster.BeforeGroupStart = _ => _replicaStopped.Task;
        pair.RoleChanged += role => _roles.Writer.TryWrite(role);
        pair.HandOverBarrier = HandOverAsync;
        pair.DataDiverged += () =>
        {
            // On the pair's loop, before the generations change: durable before the survivor's data can arrive.
            try
            {
                DivergedData.Mark(options.Replication!.StateDirectory, $"split brain resolved for {options.Cluster!.Peer} at {time.GetUtcNow():O}");
                Publish("replication-diverged", $"{options.Replication.Shown} diverged from {options.Cluster.Peer}'s data: it is kept aside before the resync replaces it");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.ReplicationFailed(logger, "replica", e.Message);
                Publish("replication-failed", $"{options.Replication!.Shown} diverged from {options.Cluster!.Peer}'s data and could not be marked to be kept aside: {e.Message}; copy it by hand before the next resync");
            }
        };
        _roles.Writer.TryWrite(pair.Role);
        _running = Task.Run(() => FollowRolesAsync(pair, _stopping.Token), CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        cluster.Opened -= Attach;
        _roles.Writer.TryComplete();
        await _stopping.CancelAsync();
        try
        {
            await _running;
        }
        catch (OperationCanceledException)
        {
        }

        await SwitchAsync(null, null);
    }

    public async ValueTask DisposeAsync()
    {
        // The container disposes it twice (as itself and as the hosted service its factory returned): the second
        // time found the token source disposed and apphbd exited 1 from an orderly stop.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopAsync(CancellationToken.None);
        _stopping.Dispose();
    }

    /// <summary>`apphbctl replication sync`: returns once every change made in the replicated directory before the
    /// call is durable on the peer; with <paramref name="applied"/> (`--applied`), once it is also visible in the
    /// peer's replica.</summary>
    /// <exception cref="InvalidOperationException">Not the active node, not replicating, or the peer did not confirm
    /// in time (the message says how far it got).</exception>
    public async Task<ControlResultDocument> SyncAsync(bool applied, CancellationToken cancellationToken)
    {
        var replication = options.Replication ?? throw new InvalidOperationException(NotReplicating);
        if (_side is not Source source)
        {
            throw new InvalidOperationException($"sync refused: this node is not the active one (it holds the {_side?.Name ?? "no"} side of {replication.Shown}); sync on the active node");
        }

        try
        {
            await source.Pump.BarrierAsync(replication.BarrierTimeout, cancellationToken, visible: applied);
        }
        catch (TimeoutException e)
        {
            throw new InvalidOperationException($"sync failed: {e.Message}", e);
        }

        return new ControlResultDocument(applied
            ? $"every change made in {replication.Shown} before this call is applied on {options.Cluster!.Peer} (record {source.Pump.Sender.Applied})"
            : $"every change made in {replication.Shown} before this call is durable on {options.Cluster!.Peer} (record {source.Pump.Sender.Acknowledged})", []);
    }

    /// <summary>How long a repair waits for its resync to be applied before it says the resync goes on without it.</summary>
    private static readonly TimeSpan RepairPatience = TimeSpan.FromMinutes(10);

    /// <summary>`apphbctl replication verify [--repair]`: compares the replicated directory with the peer's replica
    /// by block hashes and lists where they differ; with <paramref name="repair"/>, a replica found to differ is
    /// compared again and given what differs (a difference resync on a new connection), then verified again.</summary>
    /// <exception cref="InvalidOperationException">Not the active node, not replicating, no replica connected, or
    /// the connection ended meanwhile (the message says which).</exception>
    public async Task<ControlResultDocument> VerifyAsync(bool repair, CancellationToken cancellationToken)
    {
        var replication = options.Replication ?? throw new InvalidOperationException(NotReplicating);
        if (_side is not Source source)
        {
            throw new InvalidOperationException($"verify refused: this node is not the active one (it holds the {_side?.Name ?? "no"} side of {replication.Shown}); verify on the active node");
        }

        var peer = options.Cluster!.Peer;
        var found = await source.Pump.VerifyAsync(cancellationToken);
        var lines = found.Differences.Select(d => $"{d.Path}: {d.Detail}").ToList();
        var compared = $"{found.Compared} entries compared with {peer}'s replica at record {found.At}{(found.Changing > 0 ? $" ({found.Changing} changing meanwhile, left out)" : string.Empty)}";
        Verified(found, repaired: false);
        if (found.Differences.Count == 0)
        {
            Publish("replication-verified", $"{replication.Shown}: {compared}: identical");
            return new ControlResultDocument($"identical: {replication.Shown}: {compared}", lines);
        }

        Publish("replication-differs", $"{replication.Shown}: {found.Differences.Count} differences ({compared}); first: {lines[0]}");
        if (!repair)
        {
            return new ControlResultDocument($"differs: {replication.Shown}: {found.Differences.Count} differences: {compared}; `apphbctl replication verify --repair` resyncs them", lines);
        }

        source.Pump.Sender.ResyncNow($"a verify found {found.Differences.Count} differences: the replica is compared again and repaired by a difference resync");
        try
        {
            await source.Pump.Sender.WaitContinuedAsync(cancellationToken).WaitAsync(RepairPatience, time, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"repair: {found.Differences.Count} differences found; the resync that repairs them was not applied within {RepairPatience.TotalMinutes:0} minutes and goes on (see apphbctl replication status)");
        }

        var after = await source.Pump.VerifyAsync(cancellationToken);
        Verified(after, repaired: true);
        Publish(after.Differences.Count == 0 ? "replication-verified" : "replication-differs",
            $"{replication.Shown}: after the repair, {after.Differences.Count} differences ({after.Compared} entries compared at record {after.At})");
        lines.AddRange(after.Differences.Select(d => $"still differs after the repair: {d.Path}: {d.Detail}"));
        return new ControlResultDocument(after.Differences.Count == 0
            ? $"repaired: {replication.Shown}: {found.Differences.Count} differences repaired by a difference resync; verified again: identical ({after.Compared} entries at record {after.At})"
            : $"differs: {replication.Shown}: {found.Differences.Count} differences; after a difference resync {after.Differences.Count} still differ", lines);
    }

    private volatile VerifyStatus? _lastVerify;

    private long _verifies;

    private void Verified(VerifyResult result, bool repaired) =>
        _lastVerify = new VerifyStatus(time.GetUtcNow(), result.At, result.Compared, result.Changing, result.Differences.Count, repaired,
            Interlocked.Increment(ref _verifies));

    /// <summary>This node's replication for the status document; null when it replicates nothing.</summary>
    public ReplicationStatus? Status()
    {
        if (options.Replication is not { } replication)
        {
            return null;
        }

        var connections = Interlocked.Read(ref _connections);
        return _side switch
        {
            Source s => new ReplicationStatus(replication.Shown, "source", connections, _lastEnded, s.Journal.LastSequence,
                s.Pump.Sender.Acknowledged, Math.Round(s.Pump.Sender.LagSeconds, 6), null, null, Resyncs, !s.Pump.Compared || s.Pump.Sender.ResyncProgress is not null, _lastVerify,
                s.Journal.BytesAfter(s.Pump.Sender.Acknowledged), s.Pump.Sender.ResyncProgress?.Sent, s.Pump.Sender.ResyncProgress?.Total,
                s.Pump.CaptureOverflows, s.Pump.Sender.LastResyncPaths, s.Pump.Sender.BytesSent, s.Pump.Sender.BytesSentCompressed),
            Replica r => new ReplicationStatus(replication.Shown, "replica", connections, _lastEnded, null, null, null,
                r.Applier.LastApplied.Sequence, r.Applier.LastApplied.Generation.ToString(), Resyncs, r.Receiver.Resyncing, _lastVerify),
            _ => new ReplicationStatus(replication.Shown, "idle", connections, _lastEnded, null, null, null, null, null, Resyncs, false, _lastVerify),
        };
    }

    /// <summary>mode: sync: a controlled hand-over goes only once the peer confirms every change made so far (the
    /// group still runs here meanwhile; the barrier after it stops is then quick).</summary>
    private async Task<string?> ConfirmedForHandOverAsync(CancellationToken cancellationToken)
    {
        if (_side is not Source source)
        {
            return $"replication (mode: sync) is not running as the source here (it holds the {_side?.Name ?? "no"} side): the peer's data cannot be confirmed";
        }

        try
        {
            await source.Pump.BarrierAsync(options.Replication!.BarrierTimeout, cancellationToken);
            return null;
        }
        catch (TimeoutException e)
        {
            return $"replication (mode: sync): {e.Message}; the group stays here";
        }
    }

    private async Task HandOverAsync(CancellationToken cancellationToken)
    {
        if (_side is Source source)
        {
            // Applied, not only durable: the peer starts the group on its replica right after.
            await source.Pump.BarrierAsync(options.Replication!.BarrierTimeout, cancellationToken, visible: true);
        }
    }

    private async Task FollowRolesAsync(PairHost pair, CancellationToken stopping)
    {
        await foreach (var changed in _roles.Reader.ReadAllAsync(stopping))
        {
            // Releasing keeps the source: the hand-over's barrier drains it to the peer.
            var want = (changed ?? pair.Role) switch
            {
                ClusterRole.Active or ClusterRole.Releasing => "source",
                ClusterRole.Standby or ClusterRole.Starting => "replica",
                _ => null,
            };
            if (want == _side?.Name && changed is not null)
            {
                continue;
            }

            try
            {
                await SwitchAsync(want, pair);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or InvalidDataException or System.Net.Sockets.SocketException)
            {
                Failed(want ?? "idle", e.Message, $"could not start the {want} side of {options.Replication!.Shown}: {e.Message}");
            }
        }
    }

    /// <summary>How long after a side failed to start (or its capture stopped) it is started again.</summary>
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    /// <summary>A side failed to start, or its capture stopped: said, and the current side started again after
    /// <see cref="RetryAfter"/>.</summary>
    private void Failed(string side, string why, string what)
    {
        Log.ReplicationFailed(logger, side, why);
        Publish("replication-failed", $"{what}; trying again in {RetryAfter.TotalSeconds:0} s");
        _ = RetryLaterAsync(_stopping.Token);
    }

    private async Task RetryLaterAsync(CancellationToken stopping)
    {
        try
        {
            await Task.Delay(RetryAfter, time, stopping);
            _roles.Writer.TryWrite(null);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SwitchAsync(string? want, PairHost? pair)
    {
        if (_side is { } old)
        {
            _side = null;
            await old.Stop.CancelAsync();
            try
            {
                await old.Link;
            }
            catch (OperationCanceledException)
            {
            }

            if (old is Source source)
            {
                Interlocked.Add(ref _resyncsOfEarlierSources, source.Pump.Sender.Resyncs);
            }

            await old.DisposeAsync();
            old.Stop.Dispose();
            if (old is Replica)
            {
                _replicaStopped.TrySetResult();
            }
        }

        if (want is null || pair is null)
        {
            return;
        }

        var replication = options.Replication!;
        var pairOptions = options.Cluster!;
        // The dedicated link first; the LAN only when allowed, and only when the dedicated link does not connect.
        var links = pairOptions.Links.Where(l => l.Kind == LinkKind.Dedicated || replication.AllowLan).OrderBy(l => l.Kind == LinkKind.Dedicated ? 0 : 1).ToList();
        var key = File.ReadAllBytes(pairOptions.KeyFile);
        var scope = replication.Scope();
        // The root: what is watched from (the members may be made later; they are watched once they are).
        Directory.CreateDirectory(scope.Root);
        var stop = new CancellationTokenSource();
        if (want == "source")
        {
            if (Directory.Exists(replication.StateDirectory) && new CutApplier(scope, replication.StateDirectory).Recover() is { } recovered)
            {
                // A cut acknowledged to the peer (durable in the receive log) or half installed when this node's
                // replica stopped, by a takeover or a crash: the data served from here holds it.
                Publish("replication-cut-recovered", $"{replication.Shown}: {recovered}");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(replication.Journal)!);
            var journal = JournalFile.Open(replication.Journal);
            if (journal.Recovery is { } recovery)
            {
                Publish("replication-journal-recovered", $"{replication.Journal}: {recovery}");
            }

            var generation = pair.Status?.Generations[0] ?? throw new InvalidOperationException("the pair has no data generation yet");
            var pump = CapturePump.Start(new Journaler(scope, journal, generation, replication.BlockSizeKiB * 1024), journal,
                (long)replication.JournalLimitMiB << 20, (long)replication.ResyncRateMiB << 20);
            pump.Sender.Compress = replication.Compress;
            var source = new Source(stop, journal, pump);
            _ = pump.Completion.ContinueWith(done =>
            {
                // The capture stopped by itself (the journal's disk refused).
                var why = done.Exception?.InnerException?.Message ?? "it stopped";
                Failed("source", why, $"the capture of {replication.Shown} stopped: {why}");
            }, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            source.Link = ReplicationLink.ConnectAsync([.. links.Select(l => (new IPEndPoint(l.Peer, replication.Port), (IPEndPoint?)new IPEndPoint(l.Local, 0)))], key,
                pairOptions.NodeId, pairOptions.PeerId, Counted(pump.Sender.RunAsync), Ended, TimeSpan.FromMilliseconds(50), time, stop.Token);
            _side = source;
        }
        else
        {
            var applier = new CutApplier(scope, replication.StateDirectory);
            if (applier.Recover() is { } recovered)
            {
                Publish("replication-cut-recovered", $"{replication.Shown}: {recovered}");
            }

            var receiver = new ReplicationReceiver(applier, (generation, sequence, closedResync) =>
            {
                if (closedResync)
                {
                    Publish("replication-resynced", $"{replication.Shown} holds the peer's data as of record {sequence} ({generation})");
                    pair.CaughtUp(generation);
                }
            }, () =>
            {
                if (DivergedData.KeepAsideIfMarked(scope, replication.StateDirectory, time.GetUtcNow()) is { } kept)
                {
                    Publish("replication-diverged-kept", $"{replication.Shown} as it was when the split brain was resolved is kept in {kept}");
                }
            });
            var replica = new Replica(stop, applier, receiver);
            _replicaStopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            replica.Link = ReplicationLink.ListenAsync([.. links.Select(l => (new IPEndPoint(l.Local, replication.Port), l.Peer))], key,
                pairOptions.NodeId, pairOptions.PeerId, Counted(receiver.RunAsync), Ended, stop.Token);
            _side = replica;
        }

        Log.ReplicationSide(logger, want, replication.Shown, string.Join(", then ", links.Select(l => $"{l.Peer}:{replication.Port}")));
    }

    private ReplicationLink.Session Counted(ReplicationLink.Session session) => (channel, cancellationToken) =>
    {
        Interlocked.Increment(ref _connections);
        return session(channel, cancellationToken);
    };

    private void Ended(string reason)
    {
        _lastEnded = reason;
        Log.ReplicationEnded(logger, reason);
    }

    private void Publish(string kind, string message) =>
        events.Publish(new PairEvent(new ClusterEvent(kind, message)) { At = time.GetUtcNow() });
}
