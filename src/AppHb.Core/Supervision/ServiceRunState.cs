namespace AppHb.Core.Supervision;

/// <summary>Where a supervised service stands. The one source of these names: the status document, /metrics'
/// <c>apphb_service_state</c> and APPHB-MIB's <c>apphbServiceState</c> enumeration (value = position + 1) all derive
/// from it, and a test checks the MIB's text against it.</summary>
public enum ServiceRunState
{
    /// <summary>Wanted, but something it requires is not ready (or its resource group is not active here).</summary>
    Waiting,
    /// <summary>Its process was started (or adopted) and is not ready yet.</summary>
    Starting,
    /// <summary>Ready: it gates what requires it.</summary>
    Running,
    /// <summary>Its stop signal was sent; the process has not exited yet.</summary>
    Stopping,
    /// <summary>It exited and its restart is scheduled.</summary>
    Backoff,
    /// <summary>Not wanted, no process.</summary>
    Stopped,
    /// <summary>It exited with a do-not-restart exit code.</summary>
    Exited,
    /// <summary>Its restart policy gave up.</summary>
    Failed,
}

/// <summary>The lower-case names of <see cref="ServiceRunState"/> as every exporter writes them.</summary>
public static class ServiceRunStates
{
    private static readonly string[] Names = Enum.GetValues<ServiceRunState>().Select(s => s.ToString().ToLowerInvariant()).ToArray();

    /// <summary>Every state's name, in the enumeration's order.</summary>
    public static IReadOnlyList<string> All => Names;

    public static string Name(ServiceRunState state) => Names[(int)state];
}
