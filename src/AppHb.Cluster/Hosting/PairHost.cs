using System.Net;
using System.Collections.Concurrent;
using AppHb.Cluster.Addresses;
using AppHb.Cluster.Fencing;
using AppHb.Cluster.Links;
using AppHb.Cluster.State;
using AppHb.Cluster.Wire;
using AppHb.Core.Cluster;

namespace AppHb.Cluster.Hosting;

/// <summary>The services that run on the active node only, as the pair sees them (apphbd's supervisor, in the daemon).</summary>
public interface IPairGroup
{
    /// <summary>Starts the group's services in dependency order.</summary>
    void Start();

    /// <summary>Stops the group's services; completes when none has a process.</summary>
    Task StopAsync(CancellationToken cancellationToken);

    /// <summary>Whether the group is started here and every service of it runs.</summary>
    bool IsRunning { get; }
}

/// <summary>One node of the pair, as <see cref="PairHost"/> runs it.</summary>
/// <param name="StatePath">Where the node's boot epochs and data generations are kept (fsync'd on every change).</param>
/// <param name="ReplicatesData">Whether replication carries the group's data to the standby (and says when it has
/// caught up). Without it the nodes share no data that could be stale: a standby takes the peer's generations as soon
/// as it hears them, and the generations guard against a split brain only.</param>
public sealed record PairNodeOptions(
    uint ClusterId,
    ushort NodeId,
    ushort PeerId,
    bool Preferred,
    ClusterTimings Timings,
    IReadOnlyList<ClusterLink> Links,
    IReadOnlyList<IPAddress> PingTargets,
    IReadOnlyList<ServiceIp> ServiceIps,
    IReadOnlyList<FenceMethod> Fence,
    string StatePath,
    bool ReplicatesData = false,
    string FenceAgentDirectory = FenceDriver.AgentDirectory);

/// <summary>One link as the node last judged it.</summary>
/// <param name="LastHeard">When the peer was last heard on it (the host's <see cref="TimeProvider"/> timestamp).</param>
public sealed record PairLinkStatus(string Name, LinkKind Kind, LinkState State, long? LastHeard);

/// <summary>How the latest fence of the peer ended.</summary>
public sealed record PairFenceOutcome(DateTimeOffset At, string Method, bool Confirmed, string Detail);

/// <summary>What the node knows of the pair, as of its loop's latest input (at most a keepalive old).</summary>
/// <param name="Verdict">What the links say: starting, healthy, dedicated-link-broken, lan-fault, peer-silent,
/// links-returning; null before the peer was first heard.</param>
/// <param name="StandbyMode">`apphbctl standby` (or a fence by the peer) keeps this node from becoming active.</param>
/// <param name="InSync">The peer's latest heartbeat carried the same data generations as this node's.</param>
public sealed record PairStatus(
    ClusterRole Role,
    ClusterRole? PeerRole,
    string? Verdict,
    IReadOnlyList<DataGeneration> Generations,
    IReadOnlyList<DataGeneration> PeerGenerations,
    bool InSync,
    bool SplitBrain,
    bool Stale,
    bool StandbyMode,
    bool PeerFenced,
    bool ReachesPingTargets,
    bool? PeerReachesPingTargets,
    bool GroupRunning,
    IReadOnlyList<PairLinkStatus> Links);

/// <summary>Runs one node of the pair (level 3): the <see cref="FailoverMachine"/> on one loop that owns it, fed by the
/// links' receive loops, a heartbeat every keepalive on every link, the ping targets and the answers of its commands;
/// its commands carried out by the fence drivers, the service addresses, the group, the peer requests and the node's
/// state file. Everything that touches the machine runs on the loop, one input at a time.
/// <para>Sockets, the service addresses and the state are opened by <see cref="Open"/> in the calling thread's network
/// namespace.</para></summary>
public sealed class PairHost : IAsyncDisposable
{
    private readonly PairNodeOptions _options;
    private readonly IPairGroup _group;
    private readonly Action<string> _stopFeedingWatchdog;
    private readonly Action<ClusterEvent> _publish;
    private readonly TimeProvider _time;
    private readonly NodeStateStore _store;
    private readonly IReadOnlyList<PeerLinkSocket> _links;
    private readonly IReadOnlyList<ServiceAddress> _addresses;
    private readonly PeerReceiver _receiver;
    private readonly OutgoingHeaders _headers;
    private readonly PeerRequester _requester;
    private readonly PeerResponder _responder;
    private readonly IReadOnlyList<FenceDriver> _fencers;
    private readonly PingTargets? _ping;
    private readonly FailoverMachine _machine;
    /// <summary>The machine's view of each link, in the configuration's order (the order heartbeats name links by).</summary>
    private readonly IReadOnlyList<PeerLink> _linkStates;
    /// <summary>The loop's inputs, from the links' threads, the fences, the control requests; <see cref="_wake"/>
    /// is set when one arrives.</summary>
    private readonly ConcurrentQueue<Action> _inputs = new();
    /// <summary>Blocks at once, without spinning first: a SemaphoreSlim spins (yielding) before it sleeps, and a perf
    /// trace showed the two nodes' pair threads on one core yielding to each other for up to 0.8 ms at a time, on a
    /// two-core appliance whose other threads needed it.</summary>
    private readonly ManualResetEventSlim _wake = new(initialState: false, spinCount: 0);
    private Task _loop = Task.CompletedTask;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _running = [];
    private NodeState _state;
    private volatile ClusterRole _role = ClusterRole.Starting;
    private ClusterRole _announcedRole = ClusterRole.Starting;
    private volatile PairStatus? _status;
    private readonly long[] _refusedByReason = new long[(int)PeerRejection.Malformed + 1];
    private readonly long[] _refusalReportedAt = new long[(int)PeerRejection.Malformed + 1];
    private readonly Lock _tallyGate = new();
    private readonly Dictionary<(string Method, bool Confirmed), long> _fences = [];
    private PairFenceOutcome? _lastFence;
    private long _takeovers;
    private (ulong Epoch, ulong Sequence) _newestHeartbeat;
    private PeerReport? _newestReport;

    private PairHost(PairNodeOptions options, IPairGroup group, Action<string> stopFeedingWatchdog, Action<ClusterEvent> publish, TimeProvider time,
        NodeStateStore store, NodeState state, IReadOnlyList<PeerLinkSocket> links, IReadOnlyList<ServiceAddress> addresses, byte[] key)
    {
        _options = options;
        _group = group;
        _stopFeedingWatchdog = stopFeedingWatchdog;
        _publish = publish;
        _time = time;
        _store = store;
        _state = state;
        _links = links;
        _addresses = addresses;
        _receiver = new PeerReceiver(key, options.ClusterId, options.PeerId, options.NodeId, state.PeerEpoch);
        _headers = new OutgoingHeaders(options.ClusterId, options.NodeId, options.PeerId, state.BootEpoch);
        _requester = new PeerRequester(links, _headers, () => _receiver.PeerEpoch, time);
        _responder = new PeerResponder(links, _headers);
        _fencers = [.. options.Fence.Select(m => m.Kind == "peer-link"
            ? new PeerLinkFenceDriver(_requester, m.Timeout, options.Timings.Keepalive)
            : FenceDriver.CreateAgent(m, time, options.FenceAgentDirectory))];
        _ping = options.PingTargets.Count > 0 ? new PingTargets(options.PingTargets, options.Timings.Keepalive * 2) : null;
        _machine = new FailoverMachine(time, options.Timings, options.NodeId, options.Preferred,
            options.Links.Select(l => (l.Name, l.Kind)), new GenerationHistory(state.Generations));
        _linkStates = [.. options.Links.Select(l => _machine.Links.First(m => m.Name == l.Name))];
    }

    /// <summary>This node's role as last decided.</summary>
    public ClusterRole Role => _role;

    /// <summary>Raised on the pair's loop each time this node's role changes; a handler must only take note (it
    /// holds the loop).</summary>
    public event Action<ClusterRole>? RoleChanged;

    /// <summary>Raised on the pair's loop when a split brain was resolved against this node, before its generations
    /// change: replication keeps the diverged data aside before the survivor's replaces it. A handler must be quick
    /// and durable (it holds the loop).</summary>
    public event Action? DataDiverged;

    /// <summary>Run after the group stopped on a hand-over, before the peer is told it may take over: replication's
    /// "every change is on the peer". A <see cref="TimeoutException"/> or <see cref="IOException"/> from it is reported
    /// and the hand-over goes on.</summary>
    public Func<CancellationToken, Task>? HandOverBarrier { get; set; }

    /// <summary>Replication brought this node's data up to the peer's as of <paramref name="dataAsOf"/> (a difference
    /// resync finished under that generation): a stale node takes the peer's generations, now or once the peer is heard
    /// under it; otherwise nothing changes.</summary>
    public void CaughtUp(DataGeneration dataAsOf) => Post(() => _machine.CaughtUp(dataAsOf));

    /// <summary>The peer's role as its latest heartbeat said, or null before the first.</summary>
    public ClusterRole? PeerRole => _status?.PeerRole;

    /// <summary>The peer's latest heartbeat carried the same data generations as this node's.</summary>
    public bool InSyncWithPeer => _status?.InSync == true;

    /// <summary>Datagrams refused so far (forged, replayed, foreign, truncated, strangers').</summary>
    public long Refused => Enum.GetValues<PeerRejection>().Sum(RefusedFor);

    /// <summary>Datagrams refused so far by reason (<see cref="PeerRejection.None"/> is never counted).</summary>
    public long RefusedFor(PeerRejection reason) => Interlocked.Read(ref _refusedByReason[(int)reason]);

    /// <summary>What the node knows of the pair, as of its loop's latest input; null before the loop first ran.</summary>
    public PairStatus? Status => _status;

    /// <summary>How many times this node became active since apphbd started.</summary>
    public long Takeovers => Interlocked.Read(ref _takeovers);

    /// <summary>The latest fence of the peer since apphbd started, or null.</summary>
    public PairFenceOutcome? LastFence
    {
        get
        {
            lock (_tallyGate)
            {
                return _lastFence;
            }
        }
    }

    /// <summary>Fence attempts since apphbd started, by method and result.</summary>
    public IReadOnlyList<(string Method, bool Confirmed, long Count)> Fences
    {
        get
        {
            lock (_tallyGate)
            {
                return [.. _fences.Select(f => (f.Key.Method, f.Key.Confirmed, f.Value))];
            }
        }
    }

    /// <summary>How long between two events about refused datagrams of one reason (each names how many since the
    /// last): a flood of forgeries must not flood the journal.</summary>
    public static readonly TimeSpan RefusalReportInterval = TimeSpan.FromSeconds(60);

    /// <summary>Opens the node (its state booted: a new boot epoch saved before anything is sent), in the calling
    /// thread's network namespace.</summary>
    /// <param name="time">The machine's clock. The loop's waits are the operating system's: a real clock only.</param>
    /// <exception cref="IOException">A link's socket, a service address's interface or the state file.</exception>
    public static PairHost Open(PairNodeOptions options, ReadOnlySpan<byte> key, IPairGroup group, Action<string> stopFeedingWatchdog,
        Action<ClusterEvent> publish, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(stopFeedingWatchdog);
        ArgumentNullException.ThrowIfNull(publish);
        ArgumentNullException.ThrowIfNull(time);
        var store = new NodeStateStore(options.StatePath);
        var state = store.Boot(time);
        var links = new List<PeerLinkSocket>();
        var addresses = new List<ServiceAddress>();
        try
        {
            foreach (var link in options.Links)
            {
                links.Add(PeerLinkSocket.Open(link, key));
            }

            foreach (var ip in options.ServiceIps)
            {
                addresses.Add(ServiceAddress.Open(ip, time));
            }

            return new PairHost(options, group, stopFeedingWatchdog, publish, time, store, state, links, addresses, key.ToArray());
        }
        catch
        {
            links.ForEach(l => l.Dispose());
            addresses.ForEach(a => a.Dispose());
            throw;
        }
    }

    /// <summary>Starts the loops: receiving on every link and the machine with its heartbeats, each on a thread of its
    /// own; the ping targets. Not on the thread pool: replication's synchronous I/O can hold every pool thread for a
    /// second (a bulk benchmark run saw the active node's heartbeats wait that long, and its peer fenced it), and
    /// the pair's timing must not depend on anything else in the process.</summary>
    public void Start()
    {
        var stopping = _stopping.Token;
        foreach (var link in _links)
        {
            _running.Add(OnThread($"apphb-peer-{link.Link.Name}", () => link.Receive(_receiver, (datagram, on) => Post(() => Received(datagram, on)),
                CountRefusal, on => Post(() => _machine.PeerPortClosed(on.Name)), TimeSpan.FromMilliseconds(200), stopping)));
        }

        if (_ping is { } ping)
        {
            _running.Add(PingAsync(ping, stopping));
        }

        _loop = OnThread("apphb-pair", () => Run(stopping));
        _running.Add(_loop);
    }

    /// <summary>Runs <paramref name="body"/> on a new thread named <paramref name="name"/>; the task ends with it.</summary>
    private Task OnThread(string name, Action body)
    {
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                body();
                ended.TrySetResult();
            }
#pragma warning disable CA1031 // Handed to whoever awaits the thread's end (DisposeAsync); a thread's exception would end the process.
            catch (Exception e)
#pragma warning restore CA1031
            {
                _publish(new ClusterEvent("command-failed", $"the pair's thread {name} failed: {e.Message}"));
                ended.TrySetException(e);
            }
        })
        { Name = name, IsBackground = true };
        thread.Start();
        return ended.Task;
    }

    /// <summary>`apphbctl switchover`: hands the group to the peer (from the active node) or asks for it (from the
    /// standby). Null when under way, else why not.</summary>
    public Task<string?> SwitchoverAsync() => AskMachineAsync(m => m.Switchover());

    /// <summary>`apphbctl failback`: returns the group to the preferred node. Null when under way, else why not.</summary>
    public Task<string?> FailbackAsync() => AskMachineAsync(m => m.Failback());

    /// <summary>`apphbctl standby` / `unstandby`. Null when done or under way, else why not.</summary>
    public Task<string?> StandbyAsync(bool on) => AskMachineAsync(m => m.Standby(on));

    /// <summary>`apphbctl cluster resolve --survivor`: after a split brain, whose data lives on. When it is this
    /// node's, the peer is told to take this node's generations. Null when decided, else why not.</summary>
    public async Task<string?> ResolveAsync(bool thisNodeSurvives, CancellationToken cancellationToken)
    {
        var refusal = await AskMachineAsync(m => m.Resolve(thisNodeSurvives));
        if (refusal is not null || !thisNodeSurvives)
        {
            return refusal;
        }

        var reply = await _requester.AskAsync(PeerRequestKind.ResolvedForSender, "the operator resolved the split brain for this node's data",
            _options.Timings.DeadTime, _options.Timings.Keepalive, cancellationToken);
        if (reply is not { Done: true })
        {
            _publish(new ClusterEvent("resolve-unconfirmed", reply is null
                ? "the peer did not answer the split brain's resolution; it keeps refusing to move until it hears it (run the resolve again, or on the peer)"
                : $"the peer did not take the resolution: {reply.Message}"));
        }

        return null;
    }

    /// <summary>Before this node stops on purpose: if it is active, hands the group to the peer (stopped here, the
    /// address released, the peer told) and waits, at most <paramref name="bound"/>, until it is standby. True when it
    /// was handed over; false when there was nothing to hand over or the peer could not take it (then the peer fences
    /// this node once it falls silent, as for any failure).</summary>
    public async Task<bool> HandOverAsync(TimeSpan bound, CancellationToken cancellationToken)
    {
        if (Role != ClusterRole.Active)
        {
            return false;
        }

        if (await SwitchoverAsync() is { } refusal)
        {
            _publish(new ClusterEvent("handover-refused", $"stopping without handing the group over: {refusal}"));
            return false;
        }

        return await UntilAsync(() => Role == ClusterRole.Standby, bound, cancellationToken);
    }

    /// <summary>Waits until <paramref name="done"/> holds, looking every 10 ms on the host's clock, at most
    /// <paramref name="bound"/> (<see cref="Timeout.InfiniteTimeSpan"/>: no bound); whether it came to hold.</summary>
    public async Task<bool> UntilAsync(Func<bool> done, TimeSpan bound, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(done);
        var deadline = bound == Timeout.InfiniteTimeSpan ? long.MaxValue : _time.GetTimestamp() + (long)(bound.TotalSeconds * _time.TimestampFrequency);
        while (!done())
        {
            if (_time.GetTimestamp() >= deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(10), _time, cancellationToken);
        }

        return true;
    }

    /// <summary>Before this node stops on purpose, once it holds nothing (standby): tells the peer, so that the node's
    /// silence is not taken for a failure and fenced. True when the peer acknowledged it.</summary>
    public async Task<bool> LeaveAsync(CancellationToken cancellationToken)
    {
        if (Role is not (ClusterRole.Standby or ClusterRole.Starting))
        {
            return false;
        }

        var reply = await _requester.AskAsync(PeerRequestKind.Leaving, "apphbd is stopping on purpose; this node holds nothing",
            _options.Timings.DeadTime, _options.Timings.Keepalive, cancellationToken);
        return reply is { Done: true };
    }

    private Task<string?> AskMachineAsync(Func<FailoverMachine, string?> ask)
    {
        var answer = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() => answer.TrySetResult(ask(_machine)));
        return answer.Task;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        // The loop first: it sends on the links' sockets until it ends.
        await Ended(_loop);
        foreach (var link in _links)
        {
            link.Dispose();
        }

        await Ended(Task.WhenAll(_running));

        foreach (var address in _addresses)
        {
            address.Dispose();
        }

        _stopping.Dispose();
        _wake.Dispose();
    }

    private static async Task Ended(Task task)
    {
        try
        {
            await task.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or TimeoutException or System.Net.Sockets.SocketException)
        {
        }
    }

    private void Post(Action input)
    {
        _inputs.Enqueue(input);
        try
        {
            _wake.Set();
        }
        catch (ObjectDisposedException)
        {
            // Stopped: nothing runs the input any more.
        }
    }

    /// <summary>The machine's loop, on its own thread: one input at a time, its heartbeats every keepalive, its
    /// deadlines when due, its commands in order.</summary>
    private void Run(CancellationToken stopping)
    {
        var keepalive = (long)(_options.Timings.Keepalive.TotalSeconds * _time.TimestampFrequency);
        // The first heartbeat a keepalive after the start, as before the loop had a thread of its own.
        var nextBeat = _time.GetTimestamp() + keepalive;
        // Set while the machine names a deadline it has just been told about: a defect (the Core scenarios fail it),
        // but one that must not make this thread spin, least of all if it runs realtime.
        var overdue = false;
        // A service IP left on the interface (apphbd killed while active and restarted without a reboot) goes at
        // once, not a keepalive later: a starting node holds nothing.
        ReleaseStrayAddresses();
        Act();
        while (!stopping.IsCancellationRequested)
        {
            var now = _time.GetTimestamp();
            if (now >= nextBeat)
            {
                SendHeartbeats();
                ReleaseStrayAddresses();
                // Every keepalive from the last, not from now: a late wake does not stretch the period; a very late
                // one does not send a burst either.
                nextBeat = Math.Max(nextBeat + keepalive, now + 1);
            }

            var due = Math.Min(_machine.NextDue, nextBeat);
            // Rounded up: woken before it, the loop would find nothing due and wait again, spinning.
            var waitMs = (int)Math.Clamp(Math.Ceiling((due - now) * 1000.0 / _time.TimestampFrequency), overdue ? 1 : 0, int.MaxValue - 1);
            try
            {
                _wake.Wait(waitMs, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            // Reset before the queue is read: an input posted from here on sets it again, and is read now or at the
            // next wake, never left waiting for one.
            _wake.Reset();
            while (_inputs.TryDequeue(out var input))
            {
                input();
                Act();
            }

            // A machine that works names only deadlines after the moment it evaluated, which is no earlier than this.
            var expiredAt = _time.GetTimestamp();
            var next = _machine.ExpireDue();
            Act();
            var stillDue = next <= expiredAt;
            if (stillDue && !overdue)
            {
                _publish(new ClusterEvent("command-failed", "the pair's machine names a deadline it has just acted on (a defect): its loop waits 1 ms between evaluations instead of spinning"));
            }

            overdue = stillDue;
        }
    }

    /// <summary>Carries out what the machine asked, in order; what takes time runs beside the loop and answers
    /// through it.</summary>
    private void Act()
    {
        _role = _machine.Role;
        while (_machine.TryTakeCommand(out var command))
        {
            switch (command)
            {
                case ClusterCommand.Fence fence:
                    _ = FenceAsync(fence.Reason, _stopping.Token);
                    break;
                case ClusterCommand.KeepDivergedData:
                    DataDiverged?.Invoke();
                    break;
                case ClusterCommand.PersistGenerations persist:
                    _state = _state with { Generations = persist.NewestFirst };
                    _store.Save(_state);
                    break;
                case ClusterCommand.AcquireServiceIp:
                    foreach (var address in _addresses)
                    {
                        // The address is added before TakeAsync first waits; its announcements go on beside the loop.
                        _ = Observe(address.TakeAsync(_stopping.Token), $"taking {address.Ip}");
                    }

                    break;
                case ClusterCommand.AnnounceServiceIp:
                    foreach (var address in _addresses.Where(a => a.IsHeld()))
                    {
                        _ = Observe(address.AnnounceAsync(_stopping.Token), $"announcing {address.Ip} again");
                    }

                    break;
                case ClusterCommand.ReleaseServiceIp:
                    foreach (var address in _addresses)
                    {
                        address.Release();
                    }

                    break;
                case ClusterCommand.StartGroup:
                    _group.Start();
                    break;
                case ClusterCommand.StopGroup:
                    _ = StopGroupAsync(_stopping.Token);
                    break;
                case ClusterCommand.SendReleased:
                    _ = Observe(SendReleasedAsync(_receiver.PeerEpoch, _stopping.Token), "telling the peer it may take over");
                    break;
                case ClusterCommand.SendHeartbeat:
                    SendHeartbeats();
                    break;
                case ClusterCommand.AskRelease ask:
                    _ = AskReleaseAsync(ask.Reason, _stopping.Token);
                    break;
                case ClusterCommand.StopFeedingWatchdog stop:
                    _stopFeedingWatchdog(stop.Reason);
                    break;
                case ClusterCommand.Publish publish:
                    if (publish.Event.Kind == "takeover")
                    {
                        Interlocked.Increment(ref _takeovers);
                    }

                    _publish(publish.Event);
                    break;
            }

            _role = _machine.Role;
        }

        var peer = _machine.Peer;
        _status = new PairStatus(_machine.Role, peer?.Role, _machine.Verdict, [.. _machine.Generations.NewestFirst], peer?.Generations ?? [],
            peer is not null && _machine.Generations.CompareWith(peer.Generations) == GenerationRelation.Same, _machine.IsSplitBrain, _machine.IsStale, _machine.InStandbyMode, _machine.IsPeerFenced,
            _machine.ReachesPingTargets, _machine.Peer?.ReachesPingTargets, _group.IsRunning,
            [.. _linkStates.Select(l => new PairLinkStatus(l.Name, l.Kind, l.StateAt(_time.GetTimestamp(), _options.Timings, _time), l.LastHeard))]);
        if (_role != _announcedRole)
        {
            // After the status: a handler reading it sees the generations that go with the role.
            _announcedRole = _role;
            RoleChanged?.Invoke(_role);
        }
    }

    private void CountRefusal(PeerRejection reason, IPEndPoint source, ClusterLink link)
    {
        var count = Interlocked.Increment(ref _refusedByReason[(int)reason]);
        var now = _time.GetTimestamp();
        var reported = Interlocked.Read(ref _refusalReportedAt[(int)reason]);
        if ((reported != 0 && _time.GetElapsedTime(reported, now) < RefusalReportInterval)
            || Interlocked.CompareExchange(ref _refusalReportedAt[(int)reason], now, reported) != reported)
        {
            return;
        }

        _publish(new ClusterEvent("datagram-refused",
            $"refused a datagram on link {link.Name} from {source}: {Describe(reason)} ({count} refused for this reason since apphbd started; next report in {RefusalReportInterval.TotalSeconds:0} s at the earliest)",
            link.Name));
    }

    private static string Describe(PeerRejection reason) => reason switch
    {
        PeerRejection.Truncated => "truncated or oversized",
        PeerRejection.NotOurs => "not the pair's protocol or version",
        PeerRejection.ForeignCluster => "another pair's cluster id",
        PeerRejection.WrongNode => "not from the peer or not for this node",
        PeerRejection.Forged => "its HMAC does not match (forged, corrupted, or another key)",
        PeerRejection.Replayed => "replayed or too old",
        PeerRejection.Malformed => "authenticated but malformed",
        _ => reason.ToString(),
    };

    private void Received(PeerDatagram datagram, ClusterLink link)
    {
        var restarted = _receiver.PeerEpoch != _state.PeerEpoch;
        if (restarted)
        {
            // The peer restarted: its new epoch is kept, so a replay of its earlier boot is refused after ours too.
            _state = _state with { PeerEpoch = _receiver.PeerEpoch };
            _store.Save(_state);
        }

        switch (datagram)
        {
            case PeerHeartbeat heartbeat:
                // Datagrams arrive out of order (a kernel queues them for a neighbour it cannot resolve yet and sends
                // them when it can, seconds late): an older heartbeat proves its link delivers, but what it says is
                // history, and only the newest is believed.
                var sent = (heartbeat.Header.BootEpoch, heartbeat.Header.Sequence);
                if (_newestReport is null || sent.CompareTo(_newestHeartbeat) > 0)
                {
                    _newestHeartbeat = sent;
                    _newestReport = new PeerReport(heartbeat.Role, heartbeat.Generations, heartbeat.ReachesPingTargets, heartbeat.HeldStandby,
                        heartbeat.HearsReceiverOn(_state.BootEpoch, l => l < _linkStates.Count));
                }

                _machine.Heard(link.Name, _newestReport);
                if (!_options.ReplicatesData && _machine.IsStale)
                {
                    _machine.CaughtUp(_newestReport.CurrentGeneration);
                }

                break;
            case PeerReply reply:
                _requester.Answered(reply);
                break;
            case PeerRequest request:
                _ = _responder.HandleAsync(request, AnswerAsync, _stopping.Token);
                break;
        }

        if (restarted)
        {
            _machine.PeerRestarted();
        }
    }

    /// <summary>The peer's request, decided on the loop.</summary>
    private Task<(bool Done, string Message)> AnswerAsync(PeerRequest request, CancellationToken cancellationToken)
    {
        var answer = new TaskCompletionSource<(bool, string)>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            switch (request.Kind)
            {
                case PeerRequestKind.Release:
                    var refusal = _machine.ReleaseRequested(request.Reason);
                    answer.TrySetResult(refusal is null ? (true, "releasing the group to you") : (false, refusal));
                    break;
                case PeerRequestKind.Released:
                    _machine.PeerReleased(sentBeforeLatestReport: (request.Header.BootEpoch, request.Header.Sequence).CompareTo(_newestHeartbeat) < 0);
                    answer.TrySetResult(_machine.Role is ClusterRole.TakingOver or ClusterRole.Active
                        ? (true, "taking over")
                        : (false, $"not taking over: this node is {_machine.Role.ToString().ToLowerInvariant()}"));
                    break;
                case PeerRequestKind.Leaving:
                    _machine.PeerLeaving();
                    answer.TrySetResult((true, "noted: your silence is not a failure"));
                    break;
                case PeerRequestKind.ResolvedForSender:
                    var resolveRefusal = _machine.Resolve(thisNodeSurvives: false);
                    answer.TrySetResult(resolveRefusal is null ? (true, "taking your data generations") : (false, resolveRefusal));
                    break;
                case PeerRequestKind.FenceOverLink:
                    _machine.FencedByPeer(request.Reason);
                    _ = FenceSelfAsync(answer, cancellationToken);
                    break;
                default:
                    answer.TrySetResult((false, $"request kind {request.Kind} is unknown to this node"));
                    break;
            }
        });
        return answer.Task.WaitAsync(cancellationToken);
    }

    /// <summary>The peer-link fence as the fenced node carries it out: once the group is stopped and the service IP
    /// released (the machine is standby), the LAN interfaces go down, and only then is the fence confirmed.</summary>
    private async Task FenceSelfAsync(TaskCompletionSource<(bool, string)> answer, CancellationToken cancellationToken)
    {
        try
        {
            await UntilAsync(() => Role == ClusterRole.Standby, Timeout.InfiniteTimeSpan, cancellationToken);

            var down = new List<string>();
            foreach (var lan in _options.Links.Where(l => l.Kind == LinkKind.Lan).Select(l => l.Interface).Distinct(StringComparer.Ordinal))
            {
                _ = Linux.Network.LinkInterface.SetDown(lan);
                down.Add(lan);
            }

            _publish(new ClusterEvent("fenced-by-peer", $"fenced: the group is stopped, the service IP released, LAN interface {string.Join(", ", down)} down"));
            answer.TrySetResult((true, $"group stopped, service IP released, LAN interface {string.Join(", ", down)} down"));
        }
        catch (OperationCanceledException)
        {
            answer.TrySetCanceled(cancellationToken);
        }
        catch (IOException e)
        {
            answer.TrySetResult((false, $"the group is stopped and the service IP released, but the LAN interface stays up: {e.Message}"));
        }
    }

    /// <summary>A node that is neither active nor on its way never holds a service address: one found on its
    /// interface (left by an apphbd that crashed or was killed while active and was restarted without a reboot, or put
    /// there by hand) is removed at once and reported. Checked every keepalive, so a stray address answers the LAN for
    /// at most that long beside the active node's (the partition checker once saw a standby hold it for 30 s).</summary>
    private void ReleaseStrayAddresses()
    {
        if (_machine.Role is not (ClusterRole.Standby or ClusterRole.Starting))
        {
            return;
        }

        foreach (var address in _addresses)
        {
            try
            {
                if (address.IsHeld() && address.Release())
                {
                    _publish(new ClusterEvent("stray-service-ip", $"removed the service IP {address.Ip.Address}/{address.Ip.PrefixLength} from {address.Ip.Interface}: this node is {ClusterRoles.Name(_machine.Role)}, and only the active node holds it"));
                }
            }
            catch (IOException e)
            {
                _publish(new ClusterEvent("command-failed", $"checking that this {ClusterRoles.Name(_machine.Role)} node does not hold {address.Ip.Address}: {e.Message}"));
            }
        }
    }

    private void SendHeartbeats()
    {
        var now = _time.GetTimestamp();
        var heard = new List<HeardLink>(_linkStates.Count);
        var index = 0;
        foreach (var peerLink in _linkStates)
        {
            var age = peerLink.LastHeard is { } last ? _time.GetElapsedTime(last, now).TotalMilliseconds : ushort.MaxValue;
            heard.Add(new HeardLink((byte)index++, peerLink.StateAt(now, _options.Timings, _time), (ushort)Math.Min(ushort.MaxValue, age)));
        }

        var reaches = _ping is null || _reachesPingTargets;
        index = 0;
        foreach (var socket in _links)
        {
            socket.Send(new PeerHeartbeat(_headers.Next(), _machine.Role, (byte)index++, reaches, _group.IsRunning, heard,
                _machine.Generations.NewestFirst, ReplicationPosition: 0, _machine.InStandbyMode, HeardEpoch: _receiver.PeerEpoch));
        }
    }

    private bool _reachesPingTargets = true;

    private async Task PingAsync(PingTargets ping, CancellationToken stopping)
    {
        var period = TimeSpan.FromTicks(Math.Max(_options.Timings.Keepalive.Ticks * 5, TimeSpan.TicksPerSecond));
        while (!stopping.IsCancellationRequested)
        {
            bool reachable;
            try
            {
                reachable = await ping.AnyReachableAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Post(() =>
            {
                _reachesPingTargets = reachable;
                _machine.PingTargets(reachable);
            });
            try
            {
                await Task.Delay(period, _time, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task FenceAsync(string reason, CancellationToken stopping)
    {
        var failures = new List<string>();
        foreach (var fencer in _fencers)
        {
            FenceResult result;
            try
            {
                result = await fencer.FenceAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            lock (_tallyGate)
            {
                var key = (fencer.Description, result.Confirmed);
                _fences[key] = _fences.GetValueOrDefault(key) + 1;
                _lastFence = new PairFenceOutcome(_time.GetUtcNow(), fencer.Description, result.Confirmed, result.Detail);
            }

            if (result.Confirmed)
            {
                Post(() => _machine.FenceCompleted(true, $"{result.Detail} ({reason})"));
                return;
            }

            failures.Add(result.Detail);
        }

        Post(() => _machine.FenceCompleted(false, failures.Count == 0 ? "no fence method" : string.Join("; ", failures)));
    }

    private async Task StopGroupAsync(CancellationToken stopping)
    {
        try
        {
            await _group.StopAsync(stopping);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        Post(_machine.GroupStopped);
    }

    private async Task AskReleaseAsync(string reason, CancellationToken stopping)
    {
        PeerReply? reply;
        try
        {
            reply = await _requester.AskAsync(PeerRequestKind.Release, reason, _options.Timings.DeadTime, _options.Timings.Keepalive, stopping);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (reply is not { Done: true })
        {
            _publish(new ClusterEvent("release-refused", reply is null
                ? "the peer did not answer the request to release the group"
                : $"the peer refused to release the group: {reply.Message}"));
        }
    }

    /// <summary>The group is stopped: what it wrote reaches the peer (<see cref="HandOverBarrier"/>), then the peer
    /// is told it may take over.</summary>
    /// <param name="peerEpoch">The peer's boot when the group stopped: the release is for that boot only.</param>
    private async Task SendReleasedAsync(ulong peerEpoch, CancellationToken cancellationToken)
    {
        if (HandOverBarrier is { } barrier)
        {
            try
            {
                await barrier(cancellationToken);
            }
            catch (Exception e) when (e is TimeoutException or IOException or InvalidOperationException)
            {
                // Handing over anyway: the group is stopped on both nodes until the peer takes it, and holding it
                // back does not bring the peer's copy closer. Said loudly: what was not confirmed may be missing there.
                _publish(new ClusterEvent("hand-over-unsynced", $"handing over without confirming the last data on the peer: {e.Message}"));
            }
        }

        await _requester.AskAsync(PeerRequestKind.Released, "the group is stopped and the service IP released",
            _options.Timings.DeadTime, _options.Timings.Keepalive, cancellationToken, to: peerEpoch);
    }

    private async Task Observe(Task work, string what)
    {
        try
        {
            await work;
        }
        catch (OperationCanceledException)
        {
        }
#pragma warning disable CA1031 // Reported as an event: the pair's operators must see a failed command.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _publish(new ClusterEvent("command-failed", $"{what} failed: {e.Message}"));
        }
    }
}
