namespace AppHb.Core.Heartbeats;

/// <summary>The registry's record of one client; the connection that registered it holds this handle, so a beat
/// needs no lookup. Mutable state is guarded by the registry's lock.</summary>
public sealed class RegisteredClient
{
    internal RegisteredClient(ulong id, ClientIdentity identity, HeartbeatTiming timing, long intervalTicks, long warnTicks, long now, object? owner)
    {
        Id = id;
        Owner = owner;
        Identity = identity;
        Timing = timing;
        IntervalTicks = intervalTicks;
        WarnTicks = warnTicks;
        LastBeat = now;
    }

    public ulong Id { get; }

    public ClientIdentity Identity { get; }

    /// <summary>What carries the client's beats (the daemon's connection object), for <see cref="HeartbeatRegistry.PendingBeat"/>.</summary>
    public object? Owner { get; }

    internal HeartbeatTiming Timing { get; set; }

    internal long IntervalTicks { get; set; }

    internal long WarnTicks { get; set; }

    internal long LastBeat { get; set; }

    internal long Beats { get; set; }

    internal ClientState State { get; set; }

    /// <summary>Bumped whenever the pending deadline entry must be ignored (timing changed, episode ended).</summary>
    internal int Version { get; set; }

    internal bool Removed { get; set; }
}
