namespace AppHb.Core.Cluster;

/// <summary>A link's role in the diagnosis: the dedicated link (a crossover cable) or the LAN.</summary>
public enum LinkKind
{
    Dedicated,
    Lan,
}

/// <summary>How a link to the peer stands, from the peer's heartbeats on it.</summary>
public enum LinkState
{
    /// <summary>Nothing heard on it since this node started.</summary>
    Unknown,
    /// <summary>Heard within warntime.</summary>
    Up,
    /// <summary>Silent for warntime: still counted up, and said.</summary>
    Late,
    /// <summary>Silent for deadtime.</summary>
    Dead,
    /// <summary>Heard again after it was dead, but not yet for the hold time: still counted down, so that a flapping
    /// link never moves a role.</summary>
    Returning,
}

/// <summary>Heartbeat's timings (keepalive, warntime, deadtime, initdead) and what the pair adds to them.</summary>
/// <param name="Keepalive">How often each node sends a heartbeat on every link.</param>
/// <param name="WarnTime">Silence after which a link is late.</param>
/// <param name="DeadTime">Silence after which a link is dead; both links dead this long: the peer is presumed dead.</param>
/// <param name="InitDead">At boot, how long a node that has not heard its peer waits before it may fence it and
/// become active.</param>
/// <param name="LinkHold">How long a link that was dead must be heard again, without a gap past warntime, before it
/// counts as up.</param>
/// <param name="FenceDelay">How much sooner the active node fences a silent peer than the standby does: the active
/// fences after deadtime less this, the standby after deadtime, so that when both links are cut at once and both nodes
/// fence, the active one wins, while a standby whose active really died waits no longer than deadtime.</param>
/// <param name="FenceRetry">First wait after a failed fence; doubled after each failure up to ten times this.</param>
/// <param name="FailbackDelay">With automatic failback, how long the preferred node must be healthy and caught up
/// before the service returns to it; null: failback is manual.</param>
public sealed record ClusterTimings(
    TimeSpan Keepalive,
    TimeSpan WarnTime,
    TimeSpan DeadTime,
    TimeSpan InitDead,
    TimeSpan LinkHold,
    TimeSpan FenceDelay,
    TimeSpan FenceRetry,
    TimeSpan? FailbackDelay)
{
    /// <summary>Heartbeat's own defaults scaled for an appliance pair: keepalive 200 ms, deadtime 2 s.</summary>
    public static ClusterTimings Default { get; } = new(
        TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(30),
        TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), null);

    /// <summary>Silence on every link after which the active node fences its peer.</summary>
    public TimeSpan ActiveFenceAfter => DeadTime - FenceDelay;

    /// <summary>The fence delay when none is configured: a second, or less when deadtime is short, always leaving the
    /// active node twice keepalive of silence before it fences.</summary>
    public static TimeSpan DefaultFenceDelay(TimeSpan keepalive, TimeSpan deadTime)
    {
        var longest = deadTime - 2 * keepalive;
        var delay = TimeSpan.FromSeconds(1) < deadTime / 2 ? TimeSpan.FromSeconds(1) : deadTime / 2;
        return delay < longest ? delay : longest < TimeSpan.Zero ? TimeSpan.Zero : longest;
    }

    /// <summary>Why these timings cannot work, or null.</summary>
    public string? Validate()
    {
        if (Keepalive <= TimeSpan.Zero)
        {
            return "keepalive must be positive";
        }

        if (DeadTime < 2 * Keepalive)
        {
            return $"deadtime ({DeadTime.TotalMilliseconds:0} ms) must be at least twice keepalive ({Keepalive.TotalMilliseconds:0} ms): one lost datagram must not kill a link";
        }

        if (WarnTime < Keepalive || WarnTime > DeadTime)
        {
            return $"warntime ({WarnTime.TotalMilliseconds:0} ms) must lie between keepalive and deadtime";
        }

        if (FenceDelay > DeadTime - 2 * Keepalive)
        {
            return $"fence-delay ({FenceDelay.TotalMilliseconds:0} ms) must leave the active node at least twice keepalive of silence before it fences (it fences after deadtime less fence-delay; at most {(DeadTime - 2 * Keepalive).TotalMilliseconds:0} ms here)";
        }

        return InitDead < DeadTime ? $"initdead ({InitDead.TotalMilliseconds:0} ms) must be at least deadtime" : null;
    }
}

/// <summary>One link's liveness, from the timestamps of the peer's heartbeats on it (monotonic ticks of the machine's
/// <see cref="TimeProvider"/>).</summary>
public sealed class PeerLink(string name, LinkKind kind)
{
    private long _lastHeard = long.MinValue;
    private long _portClosedAt = long.MinValue;
    private long _upSince = long.MinValue;
    private bool _wasDead;

    public string Name { get; } = name;

    public LinkKind Kind { get; } = kind;

    /// <summary>When the peer was last heard on this link, or null.</summary>
    public long? LastHeard => _lastHeard == long.MinValue ? null : _lastHeard;

    /// <summary>The peer's host refused a heartbeat sent on this link (ICMP port unreachable) at <paramref name="now"/>.</summary>
    public void PortClosed(long now) => _portClosedAt = now;

    /// <summary>The peer's host refused a heartbeat on this link since the peer was last heard on it.</summary>
    public bool RefusedSinceHeard => _portClosedAt != long.MinValue && _portClosedAt > _lastHeard;

    /// <summary>A heartbeat arrived on this link at <paramref name="now"/>.</summary>
    public void Heard(long now, ClusterTimings timings, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(timings);
        ArgumentNullException.ThrowIfNull(time);
        switch (StateAt(now, timings, time))
        {
            case LinkState.Dead:
                // Back from the dead: it proves itself for the hold time first.
                _wasDead = true;
                _upSince = now;
                break;
            case LinkState.Returning when time.GetElapsedTime(_lastHeard, now) > timings.WarnTime:
                // A gap past warntime while proving itself: the hold starts again.
                _upSince = now;
                break;
            case LinkState.Unknown:
                _upSince = now;
                break;
            case LinkState.Up or LinkState.Late:
                _wasDead = false;
                break;
        }

        _lastHeard = now;
    }

    public LinkState StateAt(long now, ClusterTimings timings, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(timings);
        ArgumentNullException.ThrowIfNull(time);
        if (_lastHeard == long.MinValue)
        {
            return LinkState.Unknown;
        }

        var silent = time.GetElapsedTime(_lastHeard, now);
        if (silent >= timings.DeadTime)
        {
            return LinkState.Dead;
        }

        // Proving itself: heard for the hold time with no gap past warntime (a gap restarts the hold in Heard).
        if (_wasDead && (time.GetElapsedTime(_upSince, now) < timings.LinkHold || silent >= timings.WarnTime))
        {
            return LinkState.Returning;
        }

        return silent >= timings.WarnTime ? LinkState.Late : LinkState.Up;
    }

    /// <summary>Up or late: the peer is heard on it and it is not still proving itself after a failure.</summary>
    public bool IsUp(long now, ClusterTimings timings, TimeProvider time) => StateAt(now, timings, time) is LinkState.Up or LinkState.Late;

    /// <summary>The next moment its state may change by time alone (warn, dead, the hold's end), or long.MaxValue.</summary>
    public long NextChange(long now, ClusterTimings timings, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(timings);
        ArgumentNullException.ThrowIfNull(time);
        if (_lastHeard == long.MinValue)
        {
            return long.MaxValue;
        }

        var candidates = new List<long>(3);
        foreach (var after in new[] { timings.WarnTime, timings.DeadTime })
        {
            var at = _lastHeard + Ticks(after, time);
            if (at > now)
            {
                candidates.Add(at);
            }
        }

        if (_wasDead)
        {
            var at = _upSince + Ticks(timings.LinkHold, time);
            if (at > now)
            {
                candidates.Add(at);
            }
        }

        return candidates.Count == 0 ? long.MaxValue : candidates.Min();
    }

    internal static long Ticks(TimeSpan span, TimeProvider time) => (long)(span.TotalSeconds * time.TimestampFrequency);
}
