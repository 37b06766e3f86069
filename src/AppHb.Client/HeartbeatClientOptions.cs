namespace AppHb.Client;

/// <summary>How a <see cref="HeartbeatClient"/> registers with apphbd and beats.</summary>
public sealed class HeartbeatClientOptions
{
    /// <summary>The default socket: $APPHB_SOCKET if set, else /run/apphb/apphbd.sock.</summary>
    public static string DefaultSocketPath =>
        Environment.GetEnvironmentVariable("APPHB_SOCKET") is { Length: > 0 } path ? path : "/run/apphb/apphbd.sock";

    /// <summary>apphbd's Unix socket.</summary>
    public string SocketPath { get; set; } = DefaultSocketPath;

    /// <summary>Application name (1 to 128 UTF-8 bytes, no control characters).</summary>
    public required string Name { get; set; }

    /// <summary>Distinguishes several instances of one application; may be empty.</summary>
    public string Instance { get; set; } = string.Empty;

    /// <summary>The client is hung after this long without a beat.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The client is late (warn) after this long without a beat; zero for no warning. Must be below
    /// <see cref="Interval"/>.</summary>
    public TimeSpan WarnTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>When set, the client beats on its own at this period after registering. Prefer beating from the
    /// code path whose liveness matters; an automatic loop only proves that the process schedules timers.</summary>
    public TimeSpan? AutoBeatPeriod { get; set; }

    /// <summary>Reconnect and register again when the connection to apphbd is lost (daemon restart).</summary>
    public bool Reconnect { get; set; } = true;

    /// <summary>First delay between reconnect attempts; doubles up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest delay between reconnect attempts.</summary>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long to wait for apphbd to answer a request.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>What apphbd recorded when it accepted the registration.</summary>
/// <param name="ClientId">The daemon's id for this registration (changes after a re-registration).</param>
/// <param name="Pid">The process id the kernel reported for this connection.</param>
/// <param name="Uid">The user id the kernel reported.</param>
/// <param name="Gid">The group id the kernel reported.</param>
public sealed record HeartbeatRegistration(ulong ClientId, int Pid, uint Uid, uint Gid);
