namespace AppHb.Linux.Processes;

/// <summary>Where a child's standard output and error go.</summary>
public enum ChildOutput
{
    /// <summary>Both to one end of a socket pair whose other end the caller reads (<see cref="SpawnedChild.Output"/>).</summary>
    Capture,
    /// <summary>Appended to <see cref="SpawnRequest.OutputFile"/>.</summary>
    File,
    /// <summary>/dev/null.</summary>
    Discard,
}

/// <summary>Everything needed to start one child: it runs in a new session (its own process group, so the whole group
/// can be signalled), with default signal dispositions and an empty signal mask, stdin on /dev/null, and no
/// descriptor of the daemon (all are close-on-exec).</summary>
public sealed record SpawnRequest
{
    /// <summary>Absolute path of the executable.</summary>
    public required string Path { get; init; }

    /// <summary>argv, argv[0] included.</summary>
    public required IReadOnlyList<string> Arguments { get; init; }

    /// <summary>The whole environment, as NAME=value.</summary>
    public required IReadOnlyList<string> Environment { get; init; }

    public string? WorkingDirectory { get; init; }

    /// <summary>The child's umask, or null to inherit the daemon's.</summary>
    public UnixFileMode? Umask { get; init; }

    public ChildOutput Output { get; init; } = ChildOutput.Capture;

    public string? OutputFile { get; init; }
}
