namespace AppHb.Core.Cluster;

/// <summary>The role a node advertises to its peer.</summary>
public enum ClusterRole
{
    /// <summary>Booting: has not decided yet (waiting to hear the peer, or initdead).</summary>
    Starting,
    /// <summary>Not running the group.</summary>
    Standby,
    /// <summary>Fencing the peer, or holding the IP and starting the group: on its way to active.</summary>
    TakingOver,
    /// <summary>Holds the service IP and runs the group.</summary>
    Active,
    /// <summary>Stopping the group and releasing the IP (switchover, failback, step-down).</summary>
    Releasing,
}

/// <summary>The roles' names, in <see cref="ClusterRole"/>'s order: one source for the status document, /metrics and
/// the MIB's enumeration (numbered from 1 in this order).</summary>
public static class ClusterRoles
{
    public static IReadOnlyList<string> All { get; } = ["starting", "standby", "taking-over", "active", "releasing"];

    public static string Name(ClusterRole role) => All[(int)role];
}

/// <summary>What the peer says about itself in its latest authenticated heartbeat.</summary>
/// <param name="Role">Its role.</param>
/// <param name="Generations">Its data generations, newest first.</param>
/// <param name="ReachesPingTargets">Whether it reaches at least one of the LAN's ping targets.</param>
/// <param name="HeldStandby">It is held standby (`apphbctl standby`, or fenced over the dedicated link): it will not
/// become active, so it is never the one chosen, and the group is not switched over to it.</param>
/// <param name="HearsThisNode">It says it hears this node on one of the links: the report was made while this node
/// was running, not queued somewhere from before (a kernel holds datagrams for a neighbour it cannot resolve, and
/// sends them when it can). Only such a report may make this node take the group because the peer says it is not active.</param>
public sealed record PeerReport(ClusterRole Role, IReadOnlyList<DataGeneration> Generations, bool ReachesPingTargets, bool HeldStandby = false,
    bool HearsThisNode = true)
{
    /// <summary>The peer's current data generation (its newest), or <see cref="DataGeneration.None"/>.</summary>
    public DataGeneration CurrentGeneration => Generations.Count > 0 ? Generations[0] : DataGeneration.None;
}

/// <summary>Something the pair's operators and monitors are told.</summary>
/// <param name="Subject">What it is about, where it is not the node itself (a link's name).</param>
public sealed record ClusterEvent(string Kind, string Message, string? Subject = null)
{
    public override string ToString() => Subject is null ? $"event {Kind}" : $"event {Kind} {Subject}";
}

/// <summary>What the <see cref="FailoverMachine"/> asks its host to do, in order. Answers come back as inputs
/// (<see cref="FailoverMachine.FenceCompleted"/>, <see cref="FailoverMachine.GroupStopped"/>, ...).</summary>
public abstract record ClusterCommand
{
    private ClusterCommand() { }

    /// <summary>Fence the peer: the configured methods in order until one confirms. A timeout is a failure. Answer
    /// with <see cref="FailoverMachine.FenceCompleted"/>.</summary>
    public sealed record Fence(string Reason) : ClusterCommand
    {
        public override string ToString() => "fence";
    }

    /// <summary>A split brain was resolved against this node: its data diverged from the survivor's, and before the
    /// survivor's data replaces it, replication keeps it aside (never deleted).</summary>
    public sealed record KeepDivergedData : ClusterCommand
    {
        public override string ToString() => "keep-diverged-data";
    }

    /// <summary>Write the generations to disk and fsync before anything else happens.</summary>
    public sealed record PersistGenerations(IReadOnlyList<DataGeneration> NewestFirst) : ClusterCommand
    {
        public override string ToString() => $"persist {NewestFirst[0]}";
    }

    /// <summary>Add the service IP(s) and announce them (gratuitous ARP, unsolicited NA).</summary>
    public sealed record AcquireServiceIp : ClusterCommand
    {
        public override string ToString() => "ip acquire";
    }

    /// <summary>Announce the service IP(s) this node holds again: its LAN link to the peer came back, or its ping
    /// targets answer again (a partition healed, a port came up), and the neighbours there may have missed the
    /// announcements of the takeover or learnt the peer's.</summary>
    public sealed record AnnounceServiceIp : ClusterCommand
    {
        public override string ToString() => "ip announce";
    }

    /// <summary>Remove the service IP(s).</summary>
    public sealed record ReleaseServiceIp : ClusterCommand
    {
        public override string ToString() => "ip release";
    }

    /// <summary>Start the group's services in dependency order (the supervisor's group becomes wanted).</summary>
    public sealed record StartGroup : ClusterCommand
    {
        public override string ToString() => "group start";
    }

    /// <summary>Stop the group's services. Answer with <see cref="FailoverMachine.GroupStopped"/>.</summary>
    public sealed record StopGroup : ClusterCommand
    {
        public override string ToString() => "group stop";
    }

    /// <summary>Tell the peer, over the links, retried until it answers: this node has released; take over.</summary>
    public sealed record SendReleased : ClusterCommand
    {
        public override string ToString() => "send released";
    }

    /// <summary>Send a heartbeat on every link now, not at the next keepalive: it carries news the peer waits for
    /// (a generation announced or taken).</summary>
    public sealed record SendHeartbeat : ClusterCommand
    {
        public override string ToString() => "heartbeat now";
    }

    /// <summary>Ask the active peer to release the group to this node (failback, a pull switchover); retried until
    /// it answers.</summary>
    public sealed record AskRelease(string Reason) : ClusterCommand
    {
        public override string ToString() => "ask release";
    }

    /// <summary>A step-down did not complete in time: stop feeding the hardware watchdog, which resets the node.</summary>
    public sealed record StopFeedingWatchdog(string Reason) : ClusterCommand
    {
        public override string ToString() => "stop feeding watchdog";
    }

    /// <summary>Publish an event (and the trap, and the metric).</summary>
    public sealed record Publish(ClusterEvent Event) : ClusterCommand
    {
        public override string ToString() => Event.ToString();
    }
}
