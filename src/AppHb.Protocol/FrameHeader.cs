using System.Buffers.Binary;

namespace AppHb.Protocol;

/// <summary>A decoded frame header. <see cref="PayloadLength"/> excludes the 12 header bytes.</summary>
public readonly record struct FrameHeader(FrameType Type, FrameFlags Flags, uint Sequence, int PayloadLength)
{
    /// <summary>Total bytes of the frame on the wire, prefix included.</summary>
    public int FrameLength => FrameFormat.HeaderSize + PayloadLength;

    /// <summary>Writes this header into the first 12 bytes of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)(FrameFormat.HeaderSize - FrameFormat.LengthPrefixSize + PayloadLength));
        destination[4] = FrameFormat.CurrentVersion;
        destination[5] = (byte)Type;
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Flags);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Sequence);
    }
}
