namespace AppHb.Protocol;

/// <summary>A frame broke the protocol. The message names the frame and field; <see cref="Code"/> goes on the wire.</summary>
public sealed class ProtocolException : Exception
{
    public ProtocolException(ErrorCode code, string message) : base(message) => Code = code;

    public ProtocolException() : this(ErrorCode.Malformed, "malformed frame") { }

    public ProtocolException(string message) : this(ErrorCode.Malformed, message) { }

    public ProtocolException(string message, Exception innerException) : base(message, innerException) => Code = ErrorCode.Malformed;

    /// <summary>The wire error code for this failure.</summary>
    public ErrorCode Code { get; }
}
