namespace AppHb.Core.Heartbeats;

/// <summary>Who a socket's peer is, as the kernel says (SO_PEERCRED), never as the peer claims.</summary>
public readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid);

/// <summary>A client's self-chosen name and instance plus its kernel-attested credentials.</summary>
public sealed record ClientIdentity(string Name, string Instance, PeerCredentials Peer)
{
    /// <summary>name, or name/instance when an instance is given.</summary>
    public string Label => Instance.Length == 0 ? Name : $"{Name}/{Instance}";
}

/// <summary>Where a client stands in its current episode.</summary>
public enum ClientState
{
    Healthy,
    Warn,
    Hung,
}

/// <summary>The lower-case names of <see cref="ClientState"/>: the status document's <c>state</c>, and APPHB-MIB's
/// <c>apphbClientState</c> enumeration (value = position + 1). One source; a test reads the MIB against it.</summary>
public static class ClientStates
{
    private static readonly string[] Names = Enum.GetValues<ClientState>().Select(s => s.ToString().ToLowerInvariant()).ToArray();

    public static IReadOnlyList<string> All => Names;

    public static string Name(ClientState state) => Names[(int)state];
}

/// <summary>A client as seen at one instant.</summary>
public sealed record ClientSnapshot(
    ulong Id,
    string Name,
    string Instance,
    int Pid,
    uint Uid,
    uint Gid,
    TimeSpan Interval,
    TimeSpan Warn,
    TimeSpan LastBeatAge,
    ClientState State,
    long Beats)
{
    public string Label => Instance.Length == 0 ? Name : $"{Name}/{Instance}";
}

/// <summary>The few figures of a client that a periodic reader (the metrics exporter, at every scrape) needs, as a
/// value: reading a thousand clients this way allocates nothing, where snapshots would be a thousand objects a scrape.</summary>
public readonly record struct ClientReading(ulong Id, string Name, string Instance, TimeSpan Interval, TimeSpan LastBeatAge, ClientState State);
