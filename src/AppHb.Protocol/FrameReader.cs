using System.Buffers.Binary;

namespace AppHb.Protocol;

/// <summary>Splits a byte stream into frames. Decides as early as possible: an oversized length is rejected from the
/// first four bytes, so a hostile peer cannot make the reader wait for (or buffer) gigabytes.</summary>
public static class FrameReader
{
    /// <summary>Tries to read one frame header from the start of <paramref name="buffer"/>.</summary>
    /// <param name="maxFrameSize">The largest frame accepted, prefix included: <see cref="FrameFormat.MaxFrameSize"/>
    /// for replies, <see cref="FrameFormat.MaxRequestFrameSize"/> where requests are read.</param>
    /// <returns>true when a whole frame (header and payload) is in the buffer; false when more bytes are needed.</returns>
    /// <exception cref="ProtocolException">The header is invalid; the connection should be answered and closed.</exception>
    public static bool TryReadFrame(ReadOnlySpan<byte> buffer, out FrameHeader header, int maxFrameSize = FrameFormat.MaxFrameSize)
    {
        header = default;
        if (buffer.Length < FrameFormat.LengthPrefixSize)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(buffer);
        const int headerAfterPrefix = FrameFormat.HeaderSize - FrameFormat.LengthPrefixSize;
        if (length > maxFrameSize - FrameFormat.LengthPrefixSize)
        {
            throw new ProtocolException(ErrorCode.Oversized,
                $"frame length {length} exceeds the maximum of {maxFrameSize - FrameFormat.LengthPrefixSize} bytes after the length prefix");
        }

        if (length < headerAfterPrefix)
        {
            throw new ProtocolException(ErrorCode.Malformed,
                $"frame length {length} is shorter than the {headerAfterPrefix} header bytes that must follow the length prefix");
        }

        if (buffer.Length < FrameFormat.HeaderSize)
        {
            return false;
        }

        var version = buffer[4];
        if (version != FrameFormat.CurrentVersion)
        {
            throw new ProtocolException(ErrorCode.UnsupportedVersion,
                $"frame version {version} is not supported; this daemon speaks version {FrameFormat.CurrentVersion}");
        }

        var type = (FrameType)buffer[5];
        if (!IsKnown(type))
        {
            throw new ProtocolException(ErrorCode.UnknownType, $"frame type 0x{buffer[5]:x2} is unknown");
        }

        var flags = (FrameFlags)BinaryPrimitives.ReadUInt16BigEndian(buffer[6..]);
        const FrameFlags known = FrameFlags.AckRequested | FrameFlags.ReplayHistory | FrameFlags.More;
        if ((flags & ~known) != 0)
        {
            throw new ProtocolException(ErrorCode.Malformed, $"{type} frame has unknown flag bits 0x{(ushort)(flags & ~known):x4}");
        }

        var sequence = BinaryPrimitives.ReadUInt32BigEndian(buffer[8..]);
        header = new FrameHeader(type, flags, sequence, (int)length - headerAfterPrefix);
        return buffer.Length >= header.FrameLength;
    }

    /// <summary>The sequence field of the frame at the start of <paramref name="buffer"/>, read without validating
    /// anything else, so an error reply can name the frame it answers. The first 12 bytes keep this layout in every
    /// protocol version (docs/protocol.md).</summary>
    public static uint? PeekSequence(ReadOnlySpan<byte> buffer) =>
        buffer.Length >= FrameFormat.HeaderSize ? BinaryPrimitives.ReadUInt32BigEndian(buffer[8..]) : null;

    /// <summary>Whether the byte is a frame type defined by this protocol version.</summary>
    public static bool IsKnown(FrameType type) => type switch
    {
        FrameType.Register or FrameType.Beat or FrameType.SetInterval or FrameType.SetWarn or FrameType.Unregister
            or FrameType.StatusRequest or FrameType.Subscribe or FrameType.Control or FrameType.Ok or FrameType.Registered
            or FrameType.Error or FrameType.Status or FrameType.Event or FrameType.ControlResult or FrameType.EventsLost => true,
        _ => false,
    };

    /// <summary>Whether the type is one a client sends to the daemon.</summary>
    public static bool IsRequest(FrameType type) => (byte)type < 0x80;
}
