using AppHb.Protocol;

namespace AppHb.Client;

/// <summary>apphbd refused a request or the conversation with it failed.</summary>
public class AppHbException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public AppHbException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public AppHbException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates an exception for an error reply from the daemon.</summary>
    public AppHbException(ErrorCode code, string message) : base($"apphbd refused the request ({code}): {message}") => Code = code;

    /// <summary>Creates an exception with a generic message.</summary>
    public AppHbException() : base("apphbd request failed") { }

    /// <summary>The daemon's error code, when the daemon answered with an error.</summary>
    public ErrorCode? Code { get; }
}

/// <summary>apphbd cannot be reached: it is not running, or the socket path or its permissions are wrong.</summary>
public sealed class DaemonUnavailableException : AppHbException
{
    /// <summary>Creates an exception naming the socket that could not be reached.</summary>
    public DaemonUnavailableException(string socketPath, Exception innerException)
        : base($"cannot reach apphbd at {socketPath}: {innerException?.Message}", innerException!) => SocketPath = socketPath;

    /// <summary>Creates an exception with a message.</summary>
    public DaemonUnavailableException(string message) : base(message) => SocketPath = string.Empty;

    /// <summary>Creates an exception with a generic message.</summary>
    public DaemonUnavailableException() : this("apphbd is unavailable") { }

    /// <summary>Creates an exception with a message and cause.</summary>
    public DaemonUnavailableException(string message, Exception innerException, string socketPath)
        : base(message, innerException) => SocketPath = socketPath;

    /// <summary>The Unix socket path that was tried.</summary>
    public string SocketPath { get; }
}
