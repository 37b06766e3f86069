namespace AppHb.Core.Heartbeats;

/// <summary>Why the registry refused a request.</summary>
public enum RegistryRefusal
{
    /// <summary>A live client holds the same name and instance.</summary>
    Conflict,
    /// <summary>The configured client limit is reached.</summary>
    LimitReached,
    /// <summary>The client is no longer registered.</summary>
    NotRegistered,
}

/// <summary>The registry refused a request; the message names the client and the reason.</summary>
public sealed class RegistryException : Exception
{
    public RegistryException(RegistryRefusal refusal, string message) : base(message) => Refusal = refusal;

    public RegistryException() : this(RegistryRefusal.NotRegistered, "not registered") { }

    public RegistryException(string message) : this(RegistryRefusal.NotRegistered, message) { }

    public RegistryException(string message, Exception innerException) : base(message, innerException) { }

    public RegistryRefusal Refusal { get; }
}
