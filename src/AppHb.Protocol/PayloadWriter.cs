using System.Buffers.Binary;
using System.Text;

namespace AppHb.Protocol;

/// <summary>Writes big-endian payload fields into a span sized by the message's <c>PayloadSize</c>.</summary>
public ref struct PayloadWriter
{
    private readonly Span<byte> _destination;
    private int _position;

    public PayloadWriter(Span<byte> destination)
    {
        _destination = destination;
        _position = 0;
    }

    public readonly int Written => _position;

    public void WriteByte(byte value)
    {
        _destination[_position] = value;
        _position++;
    }

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_destination[_position..], value);
        _position += 2;
    }

    public void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_destination[_position..], value);
        _position += 4;
    }

    public void WriteInt32(int value) => WriteUInt32(unchecked((uint)value));

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_destination[_position..], value);
        _position += 8;
    }

    public void WriteString(string value)
    {
        var length = Encoding.UTF8.GetBytes(value, _destination[(_position + 2)..]);
        WriteUInt16((ushort)length);
        _position += length;
    }

    /// <summary>Encoded size of a string field: the u16 length plus the UTF-8 bytes.</summary>
    public static int SizeOf(string value) => 2 + Encoding.UTF8.GetByteCount(value);
}
