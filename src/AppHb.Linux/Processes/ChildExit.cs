namespace AppHb.Linux.Processes;

/// <summary>How a watched process ended, as waitid(2) reported it. <see cref="Known"/> is false for an adopted process
/// that is not our child: the kernel tells only its parent the status.</summary>
public readonly record struct ChildExit(int Pid, int? ExitCode, int? Signal)
{
    public bool Known => ExitCode is not null || Signal is not null;

    public override string ToString() => ExitCode is { } code ? $"exit code {code}"
        : Signal is { } signal ? $"signal {signal}" : "exited (status unknown: not our child)";
}
