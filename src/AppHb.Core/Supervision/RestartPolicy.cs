namespace AppHb.Core.Supervision;

/// <summary>What to do when restarting is not enough.</summary>
public enum EscalationAction
{
    /// <summary>Stop restarting, mark the service failed, alert.</summary>
    GiveUp,
    /// <summary>Orderly stop of everything, then stop feeding the watchdog: the hardware resets the node.</summary>
    Reboot,
    /// <summary>Hand over to the peer node (the pair, issue level 3).</summary>
    Failover,
}

/// <summary>How a service is restarted when it exits.</summary>
/// <param name="Delay">Before the first restart after a stable run; zero restarts at once (the default).</param>
/// <param name="BackoffStep">First delay of a backoff sequence when <paramref name="Delay"/> is zero.</param>
/// <param name="Multiplier">Each further restart of an unstable service waits this much longer.</param>
/// <param name="MaxDelay">Cap of the backoff.</param>
/// <param name="StableAfter">A run at least this long resets the backoff.</param>
/// <param name="MaxRestarts">More restarts than this within <paramref name="Window"/> escalate.</param>
/// <param name="DoNotRestartExitCodes">Exit codes that mean "do not restart" (cl_respawn's magic exit code, 100).</param>
public sealed record RestartPolicy(
    TimeSpan Delay,
    TimeSpan BackoffStep,
    double Multiplier,
    TimeSpan MaxDelay,
    TimeSpan StableAfter,
    int MaxRestarts,
    TimeSpan Window,
    EscalationAction Escalation,
    IReadOnlySet<int> DoNotRestartExitCodes)
{
    /// <summary>Immediate respawn; backoff 100 ms doubling to 30 s for a service that keeps dying within 10 s;
    /// more than 5 restarts in 60 s give up; exit code 100 means do not restart.</summary>
    public static RestartPolicy Default { get; } = new(
        TimeSpan.Zero, TimeSpan.FromMilliseconds(100), 2.0, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10),
        5, TimeSpan.FromSeconds(60), EscalationAction.GiveUp, new HashSet<int> { 100 });

    /// <summary>All fields as one comparable string (the set is not compared by value by the record).</summary>
    public string Canonical() =>
        $"{Delay.Ticks}|{BackoffStep.Ticks}|{Multiplier}|{MaxDelay.Ticks}|{StableAfter.Ticks}|{MaxRestarts}|{Window.Ticks}|{Escalation}|{string.Join(',', DoNotRestartExitCodes.Order())}";
}

/// <summary>How a process ended: an exit code, or the signal that killed it; neither for an adopted process that is
/// not our child (only a parent learns the status).</summary>
public readonly record struct ProcessExit(int? ExitCode, int? Signal)
{
    public static ProcessExit Code(int code) => new(code, null);

    public static ProcessExit KilledBy(int signal) => new(null, signal);

    /// <summary>Neither code nor signal is known.</summary>
    public static ProcessExit Unknown => default;

    public override string ToString() => ExitCode is { } c ? $"exit code {c}"
        : Signal is { } s ? $"signal {s} ({SignalNames.Name(s)})" : "exited (status unknown: not our child)";
}

/// <summary>The supervisor's next step for a service that exited.</summary>
public abstract record RestartDecision
{
    private RestartDecision() { }

    /// <summary>Start it again after <paramref name="After"/>.</summary>
    public sealed record Restart(TimeSpan After) : RestartDecision;

    /// <summary>Leave it stopped; not a failure.</summary>
    public sealed record StayStopped(string Reason) : RestartDecision;

    /// <summary>Restarting has failed too often: apply the policy's escalation.</summary>
    public sealed record Escalate(EscalationAction Action, string Reason) : RestartDecision;
}

/// <summary>One service's restart history and the decisions it leads to. Pure: timestamps in, decisions out, so
/// every scenario replays under a fake clock.</summary>
public sealed class RestartTracker
{
    private readonly RestartPolicy _policy;
    private readonly double _ticksPerSecond;
    private readonly Queue<long> _restarts = new();
    private long _startedAt;
    private int _unstableRestarts;

    /// <param name="ticksPerSecond">The timestamp frequency (TimeProvider.TimestampFrequency).</param>
    public RestartTracker(RestartPolicy policy, long ticksPerSecond)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentOutOfRangeException.ThrowIfLessThan(ticksPerSecond, 1);
        _policy = policy;
        _ticksPerSecond = ticksPerSecond;
    }

    /// <summary>Restarts counted in the current window.</summary>
    public int RecentRestarts => _restarts.Count;

    /// <summary>The service (re)started at <paramref name="now"/>.</summary>
    public void Started(long now) => _startedAt = now;

    /// <summary>The service exited at <paramref name="now"/>; what next?</summary>
    public RestartDecision Exited(ProcessExit exit, long now)
    {
        if (exit.ExitCode is { } code && _policy.DoNotRestartExitCodes.Contains(code))
        {
            return new RestartDecision.StayStopped($"exit code {code} means do not restart");
        }

        var ran = TimeSpan.FromSeconds((now - _startedAt) / _ticksPerSecond);
        if (ran >= _policy.StableAfter)
        {
            _unstableRestarts = 0;
        }

        var windowStart = now - (long)(_policy.Window.TotalSeconds * _ticksPerSecond);
        while (_restarts.TryPeek(out var oldest) && oldest < windowStart)
        {
            _restarts.Dequeue();
        }

        if (_restarts.Count >= _policy.MaxRestarts)
        {
            return new RestartDecision.Escalate(_policy.Escalation,
                $"{exit} after {_restarts.Count} restarts within {_policy.Window.TotalSeconds:0} s (limit {_policy.MaxRestarts})");
        }

        _restarts.Enqueue(now);
        var delay = NextDelay();
        _unstableRestarts++;
        return new RestartDecision.Restart(delay);
    }

    private TimeSpan NextDelay()
    {
        if (_unstableRestarts == 0)
        {
            return _policy.Delay;
        }

        var first = _policy.Delay > TimeSpan.Zero ? _policy.Delay : _policy.BackoffStep;
        if (first <= TimeSpan.Zero)
        {
            // No backoff at all (backoff: 0s): 0 x 2^n would be NaN once 2^n overflows to infinity.
            return TimeSpan.Zero;
        }

        var exponent = _policy.Delay > TimeSpan.Zero ? _unstableRestarts : _unstableRestarts - 1;
        var seconds = first.TotalSeconds * Math.Pow(_policy.Multiplier, exponent);
        return seconds >= _policy.MaxDelay.TotalSeconds ? _policy.MaxDelay : TimeSpan.FromSeconds(seconds);
    }
}
