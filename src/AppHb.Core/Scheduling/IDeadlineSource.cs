namespace AppHb.Core.Scheduling;

/// <summary>Something whose deadlines the daemon's one deadline loop serves: the heartbeat registry, the supervisor,
/// the peer's deadtime. The loop sleeps until the earliest of all sources' next deadlines; no source keeps a timer
/// or a thread of its own.</summary>
public interface IDeadlineSource
{
    /// <summary>Acts on every deadline that has passed; returns the timestamp of the next one
    /// (<see cref="long.MaxValue"/> when none).</summary>
    long ExpireDue();

    /// <summary>Set by the loop: called (quickly, possibly under the source's lock) when a deadline earlier than the
    /// last one <see cref="ExpireDue"/> returned was scheduled, so the loop wakes and recomputes.</summary>
    Action? EarlierDeadlineScheduled { get; set; }
}
