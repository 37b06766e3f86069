using System.Buffers.Binary;
using System.Text;

namespace AppHb.Protocol;

/// <summary>Reads big-endian payload fields; every failure names the frame type and the field.</summary>
public ref struct PayloadReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ReadOnlySpan<byte> _payload;
    private readonly FrameType _type;
    private int _position;

    public PayloadReader(FrameType type, ReadOnlySpan<byte> payload)
    {
        _type = type;
        _payload = payload;
        _position = 0;
    }

    public uint ReadUInt32(string field)
    {
        var span = Take(4, field);
        return BinaryPrimitives.ReadUInt32BigEndian(span);
    }

    public int ReadInt32(string field) => unchecked((int)ReadUInt32(field));

    public byte ReadByte(string field) => Take(1, field)[0];

    public ushort ReadUInt16(string field) => BinaryPrimitives.ReadUInt16BigEndian(Take(2, field));

    public ulong ReadUInt64(string field) => BinaryPrimitives.ReadUInt64BigEndian(Take(8, field));

    /// <summary>A u16 byte count then that many UTF-8 bytes, without control characters.</summary>
    public string ReadString(string field, int maxBytes)
    {
        var length = ReadUInt16(field + ".length");
        if (length > maxBytes)
        {
            throw new ProtocolException(ErrorCode.Malformed, $"{_type} frame: field '{field}' is {length} bytes; at most {maxBytes} allowed");
        }

        var bytes = Take(length, field);
        string value;
        try
        {
            value = StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ProtocolException(ErrorCode.Malformed, $"{_type} frame: field '{field}' is not valid UTF-8");
        }

        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                throw new ProtocolException(ErrorCode.Malformed, $"{_type} frame: field '{field}' contains control character U+{(int)c:X4}");
            }
        }

        return value;
    }

    /// <summary>Fails when bytes remain: trailing garbage is a malformed frame, not something to ignore.</summary>
    public readonly void EnsureEnd()
    {
        if (_position != _payload.Length)
        {
            throw new ProtocolException(ErrorCode.Malformed,
                $"{_type} frame has {_payload.Length - _position} unexpected trailing byte(s) after {_position} byte(s) of payload");
        }
    }

    private ReadOnlySpan<byte> Take(int count, string field)
    {
        if (_payload.Length - _position < count)
        {
            throw new ProtocolException(ErrorCode.Malformed,
                $"{_type} frame: field '{field}' needs {count} byte(s) at offset {_position}, but the payload has {_payload.Length - _position} left");
        }

        var span = _payload.Slice(_position, count);
        _position += count;
        return span;
    }
}
