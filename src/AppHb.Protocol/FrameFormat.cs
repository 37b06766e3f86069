namespace AppHb.Protocol;

/// <summary>Constants of the AppHb frame layout; docs/protocol.md is the normative description.</summary>
public static class FrameFormat
{
    /// <summary>The protocol version this library speaks.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>Size of the big-endian length prefix.</summary>
    public const int LengthPrefixSize = 4;

    /// <summary>Size of the whole header: length, version, type, flags, sequence.</summary>
    public const int HeaderSize = 12;

    /// <summary>Largest frame, prefix included. Bounded so one client cannot make the daemon buffer much.</summary>
    public const int MaxFrameSize = 64 * 1024;

    /// <summary>Largest request frame the daemon reads, prefix included. The largest request of this version (a
    /// Register with two 128-byte strings) needs 286 bytes; the bound keeps what one connection can make the daemon
    /// buffer to 1 KiB. Replies may use up to <see cref="MaxFrameSize"/>.</summary>
    public const int MaxRequestFrameSize = 1024;

    /// <summary>Largest payload that fits in <see cref="MaxFrameSize"/>.</summary>
    public const int MaxPayloadSize = MaxFrameSize - HeaderSize;

    /// <summary>Longest application name or instance, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 128;
}

/// <summary>The type byte of a frame. Requests are below 0x80, replies at or above.</summary>
public enum FrameType : byte
{
    /// <summary>Register this connection as a heartbeat client.</summary>
    Register = 0x01,
    /// <summary>A heartbeat.</summary>
    Beat = 0x02,
    /// <summary>Change the heartbeat interval.</summary>
    SetInterval = 0x03,
    /// <summary>Change the warn time.</summary>
    SetWarn = 0x04,
    /// <summary>Leave cleanly.</summary>
    Unregister = 0x05,
    /// <summary>Ask for a status document.</summary>
    StatusRequest = 0x10,
    /// <summary>Turn this connection into an event stream.</summary>
    Subscribe = 0x11,
    /// <summary>Control a supervised service (start, stop, restart, logs) or reload the configuration. Only root or the
    /// daemon's own user may send it.</summary>
    Control = 0x20,
    /// <summary>Success without data.</summary>
    Ok = 0x80,
    /// <summary>Registration accepted.</summary>
    Registered = 0x81,
    /// <summary>The request failed; the payload says why.</summary>
    Error = 0x82,
    /// <summary>A status document (UTF-8 JSON).</summary>
    Status = 0x90,
    /// <summary>One event (UTF-8 JSON).</summary>
    Event = 0x91,
    /// <summary>The result of a <see cref="Control"/> request (UTF-8 JSON, may span frames like Status).</summary>
    ControlResult = 0x92,
    /// <summary>On an event stream: events this watcher did not receive because it read too slowly (they are gone).</summary>
    EventsLost = 0x93,
}

/// <summary>Flag bits of a frame header.</summary>
[Flags]
public enum FrameFlags : ushort
{
    /// <summary>No flag.</summary>
    None = 0,
    /// <summary>On <see cref="FrameType.Beat"/>: reply with <see cref="FrameType.Ok"/>. Other requests are always answered.</summary>
    AckRequested = 0x0001,
    /// <summary>On <see cref="FrameType.Subscribe"/>: send the daemon's recent event history before live events.</summary>
    ReplayHistory = 0x0002,
    /// <summary>On <see cref="FrameType.Status"/>: the document continues in the next frame; payloads concatenate.</summary>
    More = 0x0004,
}

/// <summary>Why the daemon rejected a frame; carried in <see cref="FrameType.Error"/> replies.</summary>
public enum ErrorCode : ushort
{
    /// <summary>The frame could not be decoded (short, trailing bytes, bad string).</summary>
    Malformed = 1,
    /// <summary>The length prefix exceeds <see cref="FrameFormat.MaxFrameSize"/>.</summary>
    Oversized = 2,
    /// <summary>The version byte is not one the daemon speaks.</summary>
    UnsupportedVersion = 3,
    /// <summary>The type byte names no request.</summary>
    UnknownType = 4,
    /// <summary>A valid frame at the wrong moment, e.g. a beat before registering.</summary>
    OutOfOrder = 5,
    /// <summary>A field's value is out of range (e.g. warn time not below the interval).</summary>
    InvalidArgument = 6,
    /// <summary>The daemon's configured client limit is reached.</summary>
    LimitReached = 7,
    /// <summary>A live client already holds that name and instance.</summary>
    Conflict = 8,
    /// <summary>The daemon is shutting down.</summary>
    ShuttingDown = 9,
    /// <summary>The peer's credentials do not allow this request (control needs root or the daemon's user).</summary>
    PermissionDenied = 10,
    /// <summary>No service by that name.</summary>
    UnknownService = 11,
    /// <summary>The request was valid but could not be carried out (e.g. reload found configuration errors).</summary>
    Failed = 12,
    /// <summary>A frame was not completed within the daemon's read timeout (bytes of it arrived, the rest did not).</summary>
    TimedOut = 13,
}
