namespace AppHb.Cluster.Fencing;

/// <summary>One way to fence the peer (apphbd.yaml(5), "cluster.fence"): a ClusterLabs fence agent with its options,
/// or the peer itself over the dedicated link.</summary>
public sealed record FenceMethod(string Kind, string? Agent, IReadOnlyList<KeyValuePair<string, string>> Options, TimeSpan Timeout)
{
    public override string ToString() => Agent is null ? Kind : $"{Kind} {Agent}";
}

/// <summary>How a fence ended: confirmed (the peer is off, or released what it held), or not, and why, in words for
/// the journal and the event. Exactly what <see cref="Core.Cluster.FailoverMachine.FenceCompleted"/> takes.</summary>
public sealed record FenceResult(bool Confirmed, string Detail);

/// <summary>The base every fence method implements, as the watchdog backends do theirs: one call that either confirms
/// the peer cannot run the group any more or says why not. A fence that does not finish within its method's timeout
/// has failed; a driver never reports a confirmation it did not get.</summary>
public abstract class FenceDriver
{
    /// <summary>Where Debian's fence-agents package installs the agents a configuration names.</summary>
    public const string AgentDirectory = "/usr/sbin";

    /// <summary>What this driver fences with, for logs ("agent fence_ipmilan").</summary>
    public abstract string Description { get; }

    /// <summary>Fences the peer. Never throws for the fence's own failures (they are a result); only cancellation
    /// (apphbd stopping) ends it otherwise.</summary>
    public abstract Task<FenceResult> FenceAsync(CancellationToken cancellationToken);

    /// <summary>The driver for an <c>agent</c> method, its agent looked up in <paramref name="agentDirectory"/>.
    /// (<c>peer-link</c> needs the link to the peer; the cluster host builds it.)</summary>
    public static FenceDriver CreateAgent(FenceMethod method, TimeProvider time, string agentDirectory = AgentDirectory)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (method.Kind != "agent" || method.Agent is null)
        {
            throw new ArgumentException($"fence method {method} is not a fence agent", nameof(method));
        }

        return new FenceAgentDriver(Path.Combine(agentDirectory, method.Agent), method.Options, method.Timeout, time);
    }
}
