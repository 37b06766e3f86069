namespace AppHb.Daemon.Configuration;

/// <summary>The configuration is invalid. Every error names the file, line, column, key and what would be valid;
/// apphbd prints them all and refuses to start.</summary>
public sealed class ConfigurationException : Exception
{
    public ConfigurationException(IReadOnlyList<string> errors)
        : base(errors is null ? "invalid configuration" : string.Join(Environment.NewLine, errors)) => Errors = errors ?? [];

    public ConfigurationException() : this(["invalid configuration"]) { }

    public ConfigurationException(string message) : this([message]) { }

    public ConfigurationException(string message, Exception innerException) : base(message, innerException) => Errors = [message];

    public IReadOnlyList<string> Errors { get; }
}
