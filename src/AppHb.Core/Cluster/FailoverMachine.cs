namespace AppHb.Core.Cluster;

/// <summary>The pair's decisions for one node (level 3), inputs in, commands out, under a <see cref="TimeProvider"/>
/// that tests control (../shared/DESIGN.md, "Level 3 in one table"). The host feeds it the peer's heartbeats per link,
/// the ping targets' reachability, the answers to its commands and the operator's requests, and calls
/// <see cref="ExpireDue"/> at <see cref="NextDue"/>; it runs the commands in order.
/// <para>The rule above all others: this node becomes active only after a confirmed fence of the peer or the peer's
/// confirmed release over a link (or the peer saying, in an authenticated heartbeat, that it is not active and that
/// this node is the one to be).</para></summary>
public sealed class FailoverMachine
{
    private readonly TimeProvider _time;
    private readonly ClusterTimings _timings;
    private readonly Queue<ClusterCommand> _commands = new();
    private readonly Dictionary<string, PeerLink> _links;
    private readonly Dictionary<string, LinkState> _reportedLinkState = [];
    private readonly long _bootedAt;
    private PeerReport? _peer;
    private bool _reachesPingTargets = true;
    private long _pingLostAt = long.MaxValue;
    private bool _fencing;
    private long _fenceDueAt = long.MaxValue;
    private TimeSpan _fenceBackoff;
    private bool _peerFenced;
    private long _peerFencedAt = long.MinValue;
    private bool _splitBrain;
    private bool _maintenance;
    private bool _switchingOver;
    private long _stepDownDeadline = long.MaxValue;
    private long _failbackDueAt = long.MaxValue;
    /// <summary>When this node released the group to the peer: for deadtime after it, the peer is taking over and
    /// the "neither node is active" rule waits.</summary>
    private long _releasedToPeerAt = long.MaxValue;
    /// <summary>When the peer said it is stopping on purpose and holds nothing: its silence after that is no failure.</summary>
    private long _peerLeftAt = long.MaxValue;
    private string? _lastVerdict;
    /// <summary>When the machine was next due at its latest evaluation: an evaluation well after it finds that this
    /// node itself was not running.</summary>
    private long _dueAfterEvaluation = long.MaxValue;
    /// <summary>Until when, after such a pause, nothing is judged: the peer's backlog is heard first.</summary>
    private long _pausedUntil = long.MinValue;
    /// <summary>The peer's generation a resolve for this node's data was decided against: until the peer has taken this
    /// node's generations, hearing it still diverged is the same split brain, already resolved, not a new one.</summary>
    private DataGeneration? _resolvedAgainst;
    /// <summary>The peer's announced generation this active node last refused: said once, not at every heartbeat.</summary>
    private DataGeneration? _refusedAnnouncement;
    /// <summary>The peer's generation as of which replication last said this node holds the peer's data (a resync
    /// closed); null once this node's own data went on (it became active).</summary>
    private DataGeneration? _replicatedAsOf;
    private long _evaluatedAt = long.MinValue;
    /// <summary>The takeover under way by a hand-over or an election, its generation announced to the peer (in memory
    /// and in the heartbeats, not yet persisted); null when none is. This node becomes active only once the peer's
    /// heartbeat shows that generation: then a later takeover by the peer (a fence after this node died) advances
    /// past it, and this node returns merely stale, never diverged.</summary>
    private Announcement? _announcement;

    /// <param name="Generation">The generation announced.</param>
    /// <param name="At">When (monotonic ticks): deadtime after it, a peer that has not taken it ends the takeover.</param>
    /// <param name="Reason">Why this node takes over, for the takeover's event.</param>
    /// <param name="Before">The history before it: what a withdrawn announcement goes back to.</param>
    private sealed record Announcement(DataGeneration Generation, long At, string Reason, IReadOnlyList<DataGeneration> Before);

    /// <param name="nodeId">This node's id (stamped on the generations it starts).</param>
    /// <param name="preferred">Whether this node is the pair's preferred node: the one to become active when both
    /// start together with the same data, and the one a failback returns to.</param>
    public FailoverMachine(TimeProvider time, ClusterTimings timings, ushort nodeId, bool preferred,
        IEnumerable<(string Name, LinkKind Kind)> links, GenerationHistory generations)
    {
        ArgumentNullException.ThrowIfNull(links);
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _timings = timings ?? throw new ArgumentNullException(nameof(timings));
        if (timings.Validate() is { } invalid)
        {
            throw new ArgumentException(invalid, nameof(timings));
        }

        NodeId = nodeId;
        Preferred = preferred;
        Generations = generations ?? throw new ArgumentNullException(nameof(generations));
        _links = links.ToDictionary(l => l.Name, l => new PeerLink(l.Name, l.Kind), StringComparer.Ordinal);
        if (!_links.Values.Any(l => l.Kind == LinkKind.Dedicated) || !_links.Values.Any(l => l.Kind == LinkKind.Lan))
        {
            throw new ArgumentException("a pair needs at least one dedicated link and one LAN link", nameof(links));
        }

        _bootedAt = time.GetTimestamp();
        _fenceBackoff = timings.FenceRetry;
    }

    public ushort NodeId { get; }

    public bool Preferred { get; }

    public ClusterRole Role { get; private set; } = ClusterRole.Starting;

    public GenerationHistory Generations { get; }

    /// <summary>Both generations diverged: nothing moves until <see cref="Resolve"/>.</summary>
    public bool IsSplitBrain => _splitBrain;

    /// <summary>The peer went on from this node's data: this node may not become active before it has caught up.</summary>
    public bool IsStale => _peer is not null && Generations.CompareWith(_peer.Generations) == GenerationRelation.PeerNewer;

    public bool IsPeerFenced => _peerFenced;

    public IReadOnlyCollection<PeerLink> Links => _links.Values;

    public PeerReport? Peer => _peer;

    /// <summary>What the links say about the peer: starting, healthy, dedicated-link-broken, lan-fault, peer-silent or
    /// links-returning; null before the peer was first heard.</summary>
    public string? Verdict => _lastVerdict;

    /// <summary>`apphbctl standby` holds: this node may not become active.</summary>
    public bool InStandbyMode => _maintenance;

    /// <summary>Whether this node reaches at least one of the LAN's ping targets (true without targets).</summary>
    public bool ReachesPingTargets => _reachesPingTargets;

    /// <summary>When <see cref="ExpireDue"/> next has something to do (monotonic ticks), or long.MaxValue.</summary>
    public long NextDue
    {
        get
        {
            // Deadlines after the last evaluation, passed or not: a host that wakes late must still be told to act.
            var now = _evaluatedAt;
            var due = Math.Min(_fenceDueAt, _stepDownDeadline);
            // A moment counted from an event: due only while ahead of the last evaluation (one that came after it
            // acted on it, or found it no longer applies: initdead with no ping target answering, a failback
            // countdown the peer's silence interrupted). Naming it again would make the host's loop spin.
            void Ahead(long at)
            {
                if (at > now)
                {
                    due = Math.Min(due, at);
                }
            }

            Ahead(_pausedUntil);
            Ahead(_failbackDueAt);

            if (Role == ClusterRole.Starting && _peer is null)
            {
                Ahead(_bootedAt + PeerLink.Ticks(_timings.InitDead, _time));
            }

            if (!_reachesPingTargets && _pingLostAt != long.MaxValue)
            {
                Ahead(_pingLostAt + PeerLink.Ticks(_timings.DeadTime, _time));
            }

            if (_announcement is not null)
            {
                Ahead(_announcement.At + PeerLink.Ticks(_timings.DeadTime, _time));
            }

            if (_releasedToPeerAt != long.MaxValue)
            {
                Ahead(_releasedToPeerAt + PeerLink.Ticks(_timings.DeadTime, _time));
            }

            foreach (var link in _links.Values)
            {
                due = Math.Min(due, link.NextChange(now, _timings, _time));
                if ((Role == ClusterRole.Active || _announcement is not null) && link.LastHeard is { } heard)
                {
                    Ahead(heard + PeerLink.Ticks(_timings.ActiveFenceAfter, _time));
                }
            }

            return due;
        }
    }

    public bool TryTakeCommand(out ClusterCommand command) => _commands.TryDequeue(out command!);

    /// <summary>A heartbeat from the peer, authenticated, on <paramref name="link"/>.</summary>
    public void Heard(string link, PeerReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (!_links.TryGetValue(link, out var peerLink))
        {
            throw new ArgumentException($"no link named {link}", nameof(link));
        }

        peerLink.Heard(_time.GetTimestamp(), _timings, _time);
        if (_peerLeftAt != long.MaxValue && (report.Role == ClusterRole.Starting || _time.GetElapsedTime(_peerLeftAt) > _timings.DeadTime))
        {
            // Back (restarted), or it never left after all: its silence counts again.
            _peerLeftAt = long.MaxValue;
        }

        var first = _peer is null;
        _peer = report;
        if (report.Role == ClusterRole.Starting)
        {
            // A node says starting only before it has decided anything: it restarted.
            FencedByRestart("heard starting, authenticated");
        }

        var relation = Generations.CompareWith(report.Generations);
        var peerCurrent = report.CurrentGeneration;
        if (relation != GenerationRelation.Diverged && _splitBrain)
        {
            // The peer was resolved for this node's data (by the operator on its side): nothing diverges any more.
            _splitBrain = false;
            Publish("split-brain-resolved", $"the split brain is over: the peer took this node's data generations ({Generations.Current})");
        }

        if (relation != GenerationRelation.Diverged)
        {
            _resolvedAgainst = null;
        }

        if (relation == GenerationRelation.Diverged && !_splitBrain && peerCurrent != _resolvedAgainst)
        {
            _splitBrain = true;
            Publish("split-brain", $"split brain: this node's data generation {Generations.Current} and the peer's {peerCurrent} diverged (both were active apart); nothing moves until `apphbctl cluster resolve --survivor NODE`");
        }
        else if (relation == GenerationRelation.PeerNewer && report.Role == ClusterRole.TakingOver && Role is ClusterRole.Standby or ClusterRole.Starting
                 && report.Generations.Count > 1 && report.Generations[1] == Generations.Current)
        {
            // The peer announces the generation it takes over under, one after this node's own: nothing was written
            // under it yet, so this node holds all of its data. Taking it (persisted) is what lets the peer go on,
            // and makes this node's own later takeover, should the peer die, advance past it.
            Generations.Adopt(report.Generations);
            Command(new ClusterCommand.PersistGenerations([.. Generations.NewestFirst]));
            Command(new ClusterCommand.SendHeartbeat());
            Publish("generation-taken", $"the peer takes over under data generation {Generations.Current}: this node has taken it");
        }
        else if (first && relation == GenerationRelation.PeerNewer && !HoldsPeersCurrentData)
        {
            Publish("stale", $"the peer's data is newer ({report.Generations[0]} against {Generations.Current}): this node stays standby until it has caught up");
        }
        else if (relation == GenerationRelation.PeerNewer && Role == ClusterRole.Active)
        {
            PeerNewerWhileActive(report);
        }

        if (_announcement is { } announcement && report.CurrentGeneration == announcement.Generation && !_fencing)
        {
            Commit(announcement.Generation, $"{announcement.Reason}; the peer has taken data generation {announcement.Generation}");
        }

        TakeReplicatedGenerations();
        Evaluate();
    }

    /// <summary>This node is active and the peer's generation went on from its own. Announcing one (taking over): not
    /// taken, so the peer's takeover ends at its deadtime, and said once. Active under it: the peer took over after a
    /// fence or a release this node did not live through as such (it was frozen, or the fence missed it): the later
    /// decision stands, this node steps down, and what it wrote since is kept aside by replication, never merged.</summary>
    private void PeerNewerWhileActive(PeerReport report)
    {
        if (report.Role == ClusterRole.Active)
        {
            Command(new ClusterCommand.KeepDivergedData());
            Publish("both-active", $"the peer is active under data generation {report.CurrentGeneration}, taken over from this node's {Generations.Current} while this node was active: stepping down; what this node wrote since is kept aside, not merged");
            Release(switchover: false, "the peer took over from this node's data generation");
            return;
        }

        if (report.Role == ClusterRole.TakingOver && _refusedAnnouncement != report.CurrentGeneration)
        {
            _refusedAnnouncement = report.CurrentGeneration;
            Publish("takeover-refused", $"the peer announces data generation {report.CurrentGeneration} while this node is active under {Generations.Current}: not taken; its takeover ends at its deadtime");
        }
    }

    /// <summary>The peer's host answered this node's heartbeat on <paramref name="link"/> with ICMP port unreachable:
    /// nothing listens on the peer's port there. Once that holds on every link (each since the peer was last heard on
    /// it), the peer's apphbd is gone while its host still runs, killed or crashed, and its group may still run: it is
    /// fenced at once instead of after deadtime. A host that is off or cut off sends no such answer.</summary>
    public void PeerPortClosed(string link)
    {
        if (!_links.TryGetValue(link, out var peerLink))
        {
            throw new ArgumentException($"no link named {link}", nameof(link));
        }

        peerLink.PortClosed(_time.GetTimestamp());
        Evaluate();
    }

    /// <summary>The peer restarted (its authenticated datagrams carry a new boot epoch; call after the
    /// <see cref="Heard"/> of the datagram that showed it): a fence of it still under way is no longer waited for,
    /// whatever it held is gone. Its links still prove themselves for the hold time: letting them count at once made
    /// both nodes elect themselves from reports that crossed in flight (the partition checker saw both holding the
    /// address); the hold is what lets those reports settle today.</summary>
    public void PeerRestarted()
    {
        FencedByRestart("a new boot epoch, authenticated");
        Evaluate();
    }

    /// <summary>The peer restarted while this node was fencing it to take over: whatever it held is gone, as the fence
    /// was to make sure, so the fence under way is no longer waited for (its agent may still power the peer off once
    /// more: that costs the peer a restart, never the pair a second active node).</summary>
    private void FencedByRestart(string evidence)
    {
        if (!_fencing || Role != ClusterRole.TakingOver)
        {
            return;
        }

        _fencing = false;
        MarkPeerFenced();
        Publish("fenced", $"the peer restarted ({evidence}): it holds nothing");
        TakeOver("the peer restarted while it was being fenced");
    }

    /// <summary>Whether this node reaches at least one of its ping targets on the LAN.</summary>
    public void PingTargets(bool reachable)
    {
        if (reachable != _reachesPingTargets)
        {
            _reachesPingTargets = reachable;
            _pingLostAt = reachable ? long.MaxValue : _time.GetTimestamp();
            Publish(reachable ? "ping-targets-reached" : "ping-targets-lost", reachable ? "the LAN's ping targets answer again" : "no ping target on the LAN answers");
            if (reachable)
            {
                // The LAN is back while the peer may still be away.
                AnnounceAgainIfActive();
            }
        }

        Evaluate();
    }

    /// <summary>The fence that <see cref="ClusterCommand.Fence"/> asked for ended.</summary>
    public void FenceCompleted(bool confirmed, string detail)
    {
        if (!_fencing)
        {
            return;
        }

        _fencing = false;
        if (confirmed)
        {
            MarkPeerFenced();
            _fenceBackoff = _timings.FenceRetry;
            Publish("fenced", $"the peer is fenced: {detail}");
            if (Role == ClusterRole.TakingOver)
            {
                TakeOver("the peer is fenced");
            }
        }
        else
        {
            Publish("fence-failed", $"fencing the peer failed ({detail}); retrying in {_fenceBackoff.TotalSeconds:0.#} s; never taking over unfenced");
            _fenceDueAt = _time.GetTimestamp() + PeerLink.Ticks(_fenceBackoff, _time);
            _fenceBackoff = TimeSpan.FromTicks(Math.Min(_fenceBackoff.Ticks * 2, _timings.FenceRetry.Ticks * 10));
            if (Role == ClusterRole.TakingOver)
            {
                Withdraw();
                Role = ClusterRole.Standby;
            }
        }

        Evaluate();
    }

    /// <summary>The group stopped (after <see cref="ClusterCommand.StopGroup"/>).</summary>
    public void GroupStopped()
    {
        if (Role != ClusterRole.Releasing)
        {
            return;
        }

        _stepDownDeadline = long.MaxValue;
        Command(new ClusterCommand.ReleaseServiceIp());
        Role = ClusterRole.Standby;
        if (_switchingOver)
        {
            _switchingOver = false;
            _releasedToPeerAt = _time.GetTimestamp();
            Command(new ClusterCommand.SendReleased());
            Publish("released", "the group is stopped and the service IP released; the peer takes over");
        }
        else
        {
            Publish("stepped-down", "the group is stopped and the service IP released");
        }

        Evaluate();
    }

    /// <summary>The peer confirmed over a link that it has released the group and the IP to this node.</summary>
    /// <param name="sentBeforeLatestReport">The peer sent the release before the heartbeat this node last believed
    /// (datagrams arrive out of order, and a request is retried for deadtime): that report is the newer word, and a
    /// peer it shows active, taking over or releasing again has taken the group back since; its release is void
    /// (the partition checker's trial 252 saw a release acted on after the peer had become active again).</param>
    public void PeerReleased(bool sentBeforeLatestReport = false)
    {
        if (sentBeforeLatestReport && _peer is { Role: not ClusterRole.Standby } since)
        {
            Publish("release-superseded", $"not taking over: the peer's release predates its latest heartbeat, which says it is {ClusterRoles.Name(since.Role)}");
            return;
        }

        if (Role is ClusterRole.Standby or ClusterRole.Starting && !_splitBrain && !IsStale && !_maintenance)
        {
            Announce("the peer released the group to this node");
        }
    }

    /// <summary>The peer said, over a link, that its apphbd is stopping on purpose and that it holds nothing (it handed
    /// the group over, or never had it): until it is heard again from a new start, its silence is not a failure and is
    /// not fenced.</summary>
    public void PeerLeaving()
    {
        _peerLeftAt = _time.GetTimestamp();
        Publish("peer-leaving", "the peer's apphbd is stopping on purpose and holds nothing: its silence is not a failure");
        Evaluate();
    }

    /// <summary>The peer fences this node over the dedicated link (its <c>peer-link</c> method): this node stops the
    /// group and releases the service IP (the host then sets its LAN interface down and confirms once
    /// <see cref="Role"/> is standby), and stays in standby mode: it may not become active again until the operator's
    /// <c>apphbctl unstandby</c> or apphbd's restart.</summary>
    public void FencedByPeer(string reason)
    {
        _maintenance = true;
        Publish("fenced-by-peer", $"the peer fenced this node over the dedicated link ({reason}): standing down and staying standby until `apphbctl unstandby`");
        switch (Role)
        {
            case ClusterRole.Active:
                Release(switchover: false, "the peer fenced this node");
                break;
            case ClusterRole.TakingOver:
                // Its own fence of the peer may still be running: whatever it answers, this node does not take over.
                _fencing = false;
                Withdraw();
                Role = ClusterRole.Standby;
                break;
            case ClusterRole.Starting:
                Role = ClusterRole.Standby;
                break;
        }

        Evaluate();
    }

    /// <summary>The peer asks this (active) node to release the group to it; null when it will, else why not.</summary>
    public string? ReleaseRequested(string reason)
    {
        if (Role != ClusterRole.Active)
        {
            return $"this node is {Role.ToString().ToLowerInvariant()}, not active";
        }

        if (Refusal() is { } refusal)
        {
            return refusal;
        }

        Release(switchover: true, $"the peer asked for the group ({reason})");
        return null;
    }

    /// <summary>`apphbctl switchover`: hand the group to the peer. Null when under way, else why not.</summary>
    public string? Switchover()
    {
        if (Role == ClusterRole.Active)
        {
            if (Refusal() is { } refusal)
            {
                return refusal;
            }

            Release(switchover: true, "switchover asked by the operator");
            return null;
        }

        if (Role == ClusterRole.Standby && _peer?.Role == ClusterRole.Active)
        {
            if (IsStale)
            {
                return "this node's data is older than the peer's: it must catch up first";
            }

            if (Refusal() is { } refusal)
            {
                return refusal;
            }

            Command(new ClusterCommand.AskRelease("switchover asked by the operator"));
            return null;
        }

        return $"nothing to switch over: this node is {Role.ToString().ToLowerInvariant()} and the peer {(_peer is null ? "unheard" : _peer.Role.ToString().ToLowerInvariant())}";
    }

    /// <summary>`apphbctl failback`: return the group to the preferred node, which must have caught up.</summary>
    public string? Failback()
    {
        if (Preferred && Role == ClusterRole.Active)
        {
            return "the group already runs on the preferred node";
        }

        if (!Preferred && Role != ClusterRole.Active)
        {
            return "the group is not on this node: run failback on the node that holds it, or on the preferred node";
        }

        return Switchover();
    }

    /// <summary>`apphbctl standby` (true) / `unstandby` (false): this node may not become active; an active node hands
    /// the group to the peer first (refused when the peer cannot take it).</summary>
    public string? Standby(bool on)
    {
        if (!on)
        {
            _maintenance = false;
            Evaluate();
            return null;
        }

        if (Role == ClusterRole.Active && Switchover() is { } refusal)
        {
            return refusal;
        }

        _maintenance = true;
        return null;
    }

    /// <summary>Replication brought this node's data up to the peer's data as of <paramref name="dataAsOf"/> (a resync
    /// closed under that generation): a stale node takes the peer's generations once the peer's current one is that
    /// generation, now or when the peer is next heard (the resync can close before the first heartbeat arrives).</summary>
    public void CaughtUp(DataGeneration dataAsOf)
    {
        // Only a node that holds nothing catches up: an active node's data is the pair's newest by definition, and a
        // newer generation from its peer is a conflict (an announcement to refuse, or a takeover while this node ran),
        // never data to take. Taking it let the peer's announced takeover complete while this node stayed active
        // (trial 252: both held the address for 30 s).
        if (Role is not (ClusterRole.Standby or ClusterRole.Starting))
        {
            return;
        }

        _replicatedAsOf = dataAsOf;
        if (TakeReplicatedGenerations())
        {
            Evaluate();
        }
    }

    /// <summary>Whether replication said this node holds the peer's data under the generation the peer is at now.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(_peer))]
    private bool HoldsPeersCurrentData => _peer is not null && _replicatedAsOf == _peer.CurrentGeneration;

    /// <summary>Takes the peer's generations when this node is stale and replication said it holds the peer's data
    /// under the peer's current generation; a generation the peer went on from since proves nothing.</summary>
    private bool TakeReplicatedGenerations()
    {
        if (!IsStale || !HoldsPeersCurrentData || Role is not (ClusterRole.Standby or ClusterRole.Starting))
        {
            return false;
        }

        Generations.Adopt(_peer.Generations);
        Command(new ClusterCommand.PersistGenerations([.. Generations.NewestFirst]));
        Publish("caught-up", $"this node's data has caught up with the peer's ({Generations.Current})");
        return true;
    }

    /// <summary>`apphbctl cluster resolve --survivor`: after a split brain, which node's data lives on. Null when
    /// decided, else why not (there is no split brain).</summary>
    public string? Resolve(bool thisNodeSurvives)
    {
        if (!_splitBrain || _peer is null)
        {
            return "there is no split brain to resolve: the nodes' data generations do not diverge";
        }

        _splitBrain = false;
        if (thisNodeSurvives)
        {
            _resolvedAgainst = _peer.CurrentGeneration;
            Publish("split-brain-resolved", "split brain resolved: this node's data survives; the peer resyncs from it");
        }
        else
        {
            // The losing side's diverged data is kept aside by replication, never deleted; from here it is behind.
            Command(new ClusterCommand.KeepDivergedData());
            Generations.Adopt(_peer.Generations);
            Command(new ClusterCommand.PersistGenerations([.. Generations.NewestFirst]));
            Publish("split-brain-resolved", "split brain resolved: the peer's data survives; this node steps back to standby");
            if (Role == ClusterRole.Active)
            {
                Release(switchover: false, "the split brain was resolved for the peer");
            }
        }

        Evaluate();
        return null;
    }

    /// <summary>Acts on what time alone changed; returns <see cref="NextDue"/>.</summary>
    public long ExpireDue()
    {
        var now = _time.GetTimestamp();
        if (_stepDownDeadline <= now)
        {
            _stepDownDeadline = long.MaxValue;
            Command(new ClusterCommand.StopFeedingWatchdog("the group did not stop within deadtime while this node was isolated"));
        }

        Evaluate(fenceDue: true);
        if (_fenceDueAt <= now)
        {
            // Due, but nothing wants the fence any more (the peer was heard again).
            _fenceDueAt = long.MaxValue;
        }

        return NextDue;
    }

    private string? Refusal()
    {
        if (_splitBrain)
        {
            return "split brain: resolve it first (apphbctl cluster resolve)";
        }

        var now = _time.GetTimestamp();
        if (!_links.Values.Any(l => l.Kind == LinkKind.Dedicated && l.IsUp(now, _timings, _time)))
        {
            return "the dedicated link is down: the hand-over needs it";
        }

        if (_peer is null || Generations.CompareWith(_peer.Generations) is not (GenerationRelation.Same or GenerationRelation.PeerNewer) && Role == ClusterRole.Active)
        {
            return "the peer's data has not caught up with this node's";
        }

        if (_peer.HeldStandby && Role == ClusterRole.Active)
        {
            return "the peer is held standby: run `apphbctl unstandby` on it first";
        }

        return null;
    }

    private void Evaluate(bool fenceDue = false)
    {
        var now = _time.GetTimestamp();
        if (_dueAfterEvaluation != long.MaxValue && now - _dueAfterEvaluation > PeerLink.Ticks(_timings.WarnTime, _time))
        {
            // This node did not run when it had to (SIGSTOPped, frozen, starved): its view of the peer is as old as the
            // pause, and the peer's heartbeats of that time still wait in its sockets. Judging now would take the
            // peer for dead (and fence it) for this node's own silence: it hears the backlog first.
            _pausedUntil = now + PeerLink.Ticks(_timings.Keepalive * 2, _time);
            Publish("resumed", $"this node did not run for {(now - _dueAfterEvaluation) * 1000.0 / _time.TimestampFrequency:0} ms past a deadline (stopped or starved): it hears the peer's backlog for {(_timings.Keepalive * 2).TotalMilliseconds:0} ms before judging the peer");
        }

        _evaluatedAt = now;
        if (now >= _pausedUntil)
        {
            Judge(now, fenceDue);
        }

        // Only a deadline still ahead: one at or before this evaluation (a defect: it was just acted on) would make
        // every later evaluation look like a pause, and a pause suspends judging.
        var next = NextDue;
        _dueAfterEvaluation = next > now ? next : long.MaxValue;
    }

    /// <summary>Whether the links of kind <paramref name="alive"/> heard the peer after the last heartbeat of those of
    /// kind <paramref name="dead"/> (by more than half a keepalive: one it sent on every link lands on each within
    /// that). A link dead while the other carries heartbeats it did not is a broken link; both falling silent
    /// together, one a moment before the other, is the peer gone: no broken-link alert for that moment.</summary>
    private bool CarriedMore(LinkKind alive, LinkKind dead)
    {
        static long Last(IEnumerable<PeerLink> links) => links.Select(l => l.LastHeard ?? long.MinValue).DefaultIfEmpty(long.MinValue).Max();
        var deadLast = Last(_links.Values.Where(l => l.Kind == dead));
        return deadLast == long.MinValue || Last(_links.Values.Where(l => l.Kind == alive)) - deadLast > PeerLink.Ticks(_timings.Keepalive / 2, _time);
    }

    private void Judge(long now, bool fenceDue)
    {
        ReportLinks(now);
        var dedicatedUp = _links.Values.Any(l => l.Kind == LinkKind.Dedicated && l.IsUp(now, _timings, _time));
        var lanUp = _links.Values.Any(l => l.Kind == LinkKind.Lan && l.IsUp(now, _timings, _time));
        // Presumed dead only when silent for deadtime on every link: a link still proving itself after a failure is
        // not trusted for a hand-over, but the peer it carries is alive.
        var peerSilent = _links.Values.All(l => l.StateAt(now, _timings, _time) is LinkState.Dead or LinkState.Unknown);
        var silentForActiveFence = _links.Values.All(l => l.LastHeard is not { } heard || _time.GetElapsedTime(heard, now) >= _timings.ActiveFenceAfter);
        var peerDaemonGone = _peer is not null && _peerLeftAt == long.MaxValue && _links.Values.All(l => l.RefusedSinceHeard);
        var isolated = !_reachesPingTargets && _pingLostAt != long.MaxValue && _time.GetElapsedTime(_pingLostAt, now) >= _timings.DeadTime;

        // Until every link has been heard once or deadtime has passed since boot, a link that is merely not heard
        // yet says nothing.
        var judging = _links.Values.All(l => l.LastHeard is not null) || _time.GetElapsedTime(_bootedAt, now) >= _timings.DeadTime;
        var verdict = !judging ? "starting" : peerDaemonGone && !peerSilent ? "peer-daemon-gone" : (dedicatedUp, lanUp, peerSilent) switch
        {
            (true, true, _) => "healthy",
            (false, true, _) => CarriedMore(LinkKind.Lan, LinkKind.Dedicated) ? "dedicated-link-broken" : _lastVerdict,
            (true, false, _) => CarriedMore(LinkKind.Dedicated, LinkKind.Lan) ? "lan-fault" : _lastVerdict,
            (false, false, true) => "peer-silent",
            _ => "links-returning",
        };
        if (verdict != _lastVerdict && verdict is not null && _peer is not null)
        {
            _lastVerdict = verdict;
            switch (verdict)
            {
                case "dedicated-link-broken":
                    Publish(verdict, "the dedicated link is down while the LAN carries the peer's heartbeats: the link is broken, not the peer; replication is degraded; no takeover");
                    break;
                case "lan-fault":
                    Publish(verdict, "the LAN is down while the dedicated link carries the peer's heartbeats");
                    break;
                case "peer-daemon-gone":
                    Publish(verdict, "the peer's host refuses heartbeats on every link (ICMP port unreachable): its apphbd is gone while the host runs");
                    break;
                case "peer-silent":
                    Publish(verdict, $"the peer is silent on every link for {_timings.DeadTime.TotalMilliseconds:0} ms: presumed dead");
                    break;
                case "healthy":
                    Publish("links-healthy", "the peer is heard on both links");
                    break;
            }
        }

        switch (Role)
        {
            case ClusterRole.Starting:
                Start(now, peerSilent);
                break;
            case ClusterRole.Standby:
                if ((peerSilent || peerDaemonGone) && _peer is not null && !_splitBrain && !IsStale && !_maintenance && _reachesPingTargets)
                {
                    // The standby fences at deadtime, the active fence-delay sooner: when both links were cut at
                    // once, the active wins, and a standby whose active died waits no longer than deadtime.
                    // A node that reaches none of its ping targets fences nobody: it could not serve the LAN, and the
                    // silent peer may be the one still serving it (it would also take over only to step down, over
                    // and over).
                    BeginFence(now, fenceDue, peerSilent ? "the peer is silent on every link" : "the peer's apphbd is gone", takeOver: true);
                }
                else if (!peerSilent && !peerDaemonGone)
                {
                    CancelPendingFence();
                    if (_peer is { Role: ClusterRole.Active })
                    {
                        _releasedToPeerAt = long.MaxValue;
                    }

                    var handingOver = _releasedToPeerAt != long.MaxValue && _time.GetElapsedTime(_releasedToPeerAt, now) < _timings.DeadTime;
                    if (_peer is { Role: ClusterRole.Standby, HearsThisNode: true } && (dedicatedUp || lanUp) && IsChosen() && !handingOver && !_splitBrain && !IsStale && !_maintenance)
                    {
                        // Neither is active and the peer, heard over a link, says it is not: the chosen one takes it.
                        // Over the LAN alone too (both nodes restarted while the crossover cable was out): the announced
                        // generation is what makes an election safe (active only once the peer has taken it), and
                        // it travels on every link; without it no node would serve until the cable is back.
                        Announce(dedicatedUp
                            ? "neither node is active and this one is chosen (preferred, or the newer data)"
                            : "neither node is active and this one is chosen (preferred, or the newer data); heard over the LAN only: the dedicated link is down, replication waits for it");
                    }

                    ConsiderFailback(now, dedicatedUp && lanUp);
                }

                break;
            case ClusterRole.TakingOver when _announcement is not null && !_fencing:
                // Not "the peer says it is active": its last heartbeat may predate its release (a group that stops
                // within a keepalive); a peer that really is active never takes the generation, and deadtime ends it.
                if (_maintenance || _splitBrain)
                {
                    Abandon(_maintenance ? "this node is held standby" : "split brain");
                }
                else if ((silentForActiveFence || peerDaemonGone) && _reachesPingTargets)
                {
                    // The peer fell silent before it showed the announced generation: it may have taken it or not,
                    // so only a fence makes this takeover safe. This node fences as early as an active one would:
                    // it is the one the peer released to, or the one chosen, and must win a fence race.
                    BeginFence(now, fenceDue, peerDaemonGone ? "the peer's apphbd is gone" : "the peer fell silent while this node was taking over", takeOver: true);
                }
                else if (!peerSilent && _time.GetElapsedTime(_announcement.At, now) >= _timings.DeadTime)
                {
                    Abandon($"the peer did not take data generation {_announcement.Generation} within deadtime");
                }

                break;
            case ClusterRole.Active:
                if (peerSilent && isolated)
                {
                    Release(switchover: false, "isolated: the peer is silent on every link and no ping target answers");
                    _stepDownDeadline = now + PeerLink.Ticks(_timings.DeadTime, _time);
                }
                else if ((silentForActiveFence || peerDaemonGone) && _reachesPingTargets && !_peerFenced && !_splitBrain && _peerLeftAt == long.MaxValue)
                {
                    // The active node fences fence-delay before deadtime: it is the one that must win a fence race.
                    // Unless it reaches no ping target: then it is more likely the one cut off, and it steps down
                    // at deadtime instead.
                    BeginFence(now, fenceDue, peerDaemonGone ? "the peer's apphbd is gone" : "the peer is silent on every link", takeOver: false);
                }
                else if (verdict == "lan-fault" && !_reachesPingTargets && _peer is { ReachesPingTargets: true, HeldStandby: false } && !_splitBrain
                         && !_peerFenced && !silentForActiveFence && dedicatedUp && Generations.CompareWith(_peer.Generations) == GenerationRelation.Same)
                {
                    // Only to a peer heard on the dedicated link now: the verdict outlives the heartbeats it was made
                    // from, and a switchover to a peer this node has fenced, or is about to, hands the group to nobody
                    // and tells a reset peer to take it (the partition checker's trial 252).
                    Release(switchover: true, "this node lost the LAN and the peer still reaches its ping targets");
                }

                break;
        }

        if (_peerFenced && _links.Values.Any(l => l.LastHeard > _peerFencedAt))
        {
            // Heard since the fence: it was powered back on. A later silence needs a new fence. (Not "no longer
            // silent": a fence that ends before deadtime, the active's or one for a gone daemon, finds the links
            // still up, and the fence would repeat until they died.)
            _peerFenced = false;
        }
    }

    private void MarkPeerFenced()
    {
        _peerFenced = true;
        _peerFencedAt = _time.GetTimestamp();
    }

    private void Start(long now, bool peerSilent)
    {
        if (_peer is not null && !peerSilent)
        {
            Role = ClusterRole.Standby;
            Publish("standby", $"the peer is heard ({_peer.Role.ToString().ToLowerInvariant()}): this node starts as standby");
            return;
        }

        if (_time.GetElapsedTime(_bootedAt, now) >= _timings.InitDead && _peer is null && _reachesPingTargets)
        {
            Role = ClusterRole.Standby;
            Publish("initdead", $"the peer was not heard within initdead ({_timings.InitDead.TotalSeconds:0.#} s): fencing it before becoming active");
            BeginFence(now, fenceDue: true, "initdead passed without a word from the peer", takeOver: true);
        }
    }

    /// <summary>Which of two nodes that are both standby becomes active: the newer data, then the preferred node,
    /// then the lower id.</summary>
    private bool IsChosen()
    {
        if (_peer is null)
        {
            return false;
        }

        return Generations.CompareWith(_peer.Generations) switch
        {
            GenerationRelation.PeerOlder => true,
            GenerationRelation.Same => Preferred || _peer.HeldStandby,
            _ => false,
        };
    }

    private void ConsiderFailback(long now, bool healthy)
    {
        if (_timings.FailbackDelay is not { } delay || !Preferred || _peer?.Role != ClusterRole.Active || !healthy || IsStale || _splitBrain || _maintenance)
        {
            _failbackDueAt = long.MaxValue;
            return;
        }

        if (_failbackDueAt == long.MaxValue)
        {
            _failbackDueAt = now + PeerLink.Ticks(delay, _time);
        }
        else if (now >= _failbackDueAt)
        {
            _failbackDueAt = long.MaxValue;
            Command(new ClusterCommand.AskRelease($"automatic failback after {delay.TotalSeconds:0.#} s healthy and caught up"));
        }
    }

    private void BeginFence(long now, bool fenceDue, string reason, bool takeOver)
    {
        if (_fencing || _peerFenced && !takeOver)
        {
            return;
        }

        if (_peerFenced && takeOver)
        {
            TakeOver("the peer was fenced");
            return;
        }

        if (_fenceDueAt != long.MaxValue && now < _fenceDueAt)
        {
            // Backing off after a failed fence.
            return;
        }

        _ = fenceDue;
        _fenceDueAt = long.MaxValue;
        _fencing = true;
        if (takeOver)
        {
            Role = ClusterRole.TakingOver;
        }

        Publish("fencing", $"fencing the peer: {reason}");
        Command(new ClusterCommand.Fence(reason));
    }

    private void CancelPendingFence()
    {
        if (!_fencing)
        {
            _fenceDueAt = long.MaxValue;
        }
    }

    /// <summary>Becomes active at once: the peer is fenced (or restarted), so whatever it knows of this takeover
    /// cannot matter; or its data is older than this node's, so it cannot become active before it has caught up.</summary>
    private void TakeOver(string reason)
    {
        var next = _announcement?.Generation ?? Generations.Advance(NodeId, _peer?.CurrentGeneration ?? DataGeneration.None);
        Commit(next, reason);
    }

    /// <summary>Takes over from a peer that is alive and not active (it released the group, or it is not the one
    /// chosen): the next generation goes to the peer first, in this node's heartbeats, and this node becomes active
    /// once the peer shows it has taken it (<see cref="Heard"/>). Without that step, a node that took over and was
    /// powered off at once left a peer that knew nothing of its generation: the peer fenced it and took over under a
    /// generation of its own with the same number, and when the node returned both histories had diverged, a split
    /// brain from a plain failure (the partition checker's trial 822).</summary>
    private void Announce(string reason)
    {
        if (_peer is not null && Generations.CompareWith(_peer.Generations) == GenerationRelation.PeerOlder)
        {
            TakeOver(reason);
            return;
        }

        IReadOnlyList<DataGeneration> before = [.. Generations.NewestFirst];
        var next = Generations.Advance(NodeId, _peer?.CurrentGeneration ?? DataGeneration.None);
        _announcement = new Announcement(next, _time.GetTimestamp(), reason, before);
        Role = ClusterRole.TakingOver;
        Command(new ClusterCommand.SendHeartbeat());
        Publish("announcing", $"taking over ({reason}): announcing data generation {next} to the peer; active once it has taken it");
    }

    /// <summary>Gives up an announced generation: the history goes back to what it was (the peer may have taken the
    /// announced one; it then holds a generation this node will take again, the same one, from the same peer state).</summary>
    private void Withdraw()
    {
        if (_announcement is null)
        {
            return;
        }

        Generations.Adopt(_announcement.Before);
        _announcement = null;
    }

    private void Abandon(string why)
    {
        var announced = _announcement?.Generation;
        Withdraw();
        Role = ClusterRole.Standby;
        Publish("takeover-abandoned", $"not taking over under data generation {announced}: {why}");
    }

    private void Commit(DataGeneration next, string reason)
    {
        _announcement = null;
        _replicatedAsOf = null;
        Command(new ClusterCommand.PersistGenerations([.. Generations.NewestFirst]));
        Command(new ClusterCommand.AcquireServiceIp());
        Command(new ClusterCommand.StartGroup());
        Role = ClusterRole.Active;
        Publish("takeover", $"this node is active ({reason}); data generation {next}");
    }

    private void Release(bool switchover, string reason)
    {
        _switchingOver = switchover;
        Role = ClusterRole.Releasing;
        Publish(switchover ? "switchover" : "step-down", $"releasing the group: {reason}");
        Command(new ClusterCommand.StopGroup());
    }

    private void ReportLinks(long now)
    {
        foreach (var link in _links.Values)
        {
            var state = link.StateAt(now, _timings, _time);
            var before = _reportedLinkState.GetValueOrDefault(link.Name, LinkState.Unknown);
            if (state == before)
            {
                continue;
            }

            _reportedLinkState[link.Name] = state;
            var kind = state switch
            {
                LinkState.Up when before is LinkState.Late => null,
                LinkState.Up => "link-up",
                LinkState.Late => "link-late",
                LinkState.Dead => "link-dead",
                LinkState.Returning => "link-returning",
                _ => null,
            };
            if (kind is not null)
            {
                Publish(kind, $"link {link.Name} ({link.Kind.ToString().ToLowerInvariant()}): {state.ToString().ToLowerInvariant()}", link.Name);
            }

            if (kind == "link-up" && link.Kind == LinkKind.Lan)
            {
                AnnounceAgainIfActive();
            }
        }
    }

    /// <summary>The LAN came back (the link to the peer over it, or the ping targets): an active node announces its
    /// address again. A takeover made while this node's LAN port was dark announced it into nothing, and a healed
    /// partition may have left the peer's announcement in the neighbours' caches (a partition checker trial waited
    /// 30 s for the client's cache to expire).</summary>
    private void AnnounceAgainIfActive()
    {
        if (Role == ClusterRole.Active)
        {
            Command(new ClusterCommand.AnnounceServiceIp());
        }
    }

    private void Publish(string kind, string message, string? subject = null) =>
        Command(new ClusterCommand.Publish(new ClusterEvent(kind, message, subject)));

    private void Command(ClusterCommand command) => _commands.Enqueue(command);
}
