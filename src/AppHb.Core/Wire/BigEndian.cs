using System.Buffers.Binary;
using System.Text;

namespace AppHb.Core.Wire;

/// <summary>Appends big-endian fields to a body being built: what the pair's datagrams and the replication journal's
/// records are made of.</summary>
public static class BigEndianWriter
{
    public static void AddUInt16(List<byte> body, ushort value)
    {
        ArgumentNullException.ThrowIfNull(body);
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        body.AddRange(bytes);
    }

    public static void AddUInt32(List<byte> body, uint value)
    {
        ArgumentNullException.ThrowIfNull(body);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        body.AddRange(bytes);
    }

    public static void AddUInt64(List<byte> body, ulong value)
    {
        ArgumentNullException.ThrowIfNull(body);
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        body.AddRange(bytes);
    }

    /// <summary>A u16 length, then the text in UTF-8.</summary>
    /// <param name="what">What the text is, for the error when it is longer than <paramref name="maxBytes"/>.</param>
    public static void AddString(List<byte> body, string text, int maxBytes, string what)
    {
        ArgumentNullException.ThrowIfNull(body);
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > maxBytes)
        {
            throw new ArgumentException($"{what} is at most {maxBytes} bytes", nameof(text));
        }

        AddUInt16(body, (ushort)bytes.Length);
        body.AddRange(bytes);
    }
}

/// <summary>Reads big-endian fields off the front of a body; each read says false, and moves nothing, when the body
/// ends first (or a string is longer than allowed, or not UTF-8).</summary>
public ref struct BigEndianReader(ReadOnlySpan<byte> bytes)
{
    private ReadOnlySpan<byte> _rest = bytes;

    public readonly bool AtEnd => _rest.IsEmpty;

    /// <summary>Bytes not read yet.</summary>
    public readonly int Left => _rest.Length;

    public bool Read8(out byte value)
    {
        value = 0;
        if (_rest.IsEmpty)
        {
            return false;
        }

        value = _rest[0];
        _rest = _rest[1..];
        return true;
    }

    public bool Read16(out ushort value)
    {
        value = 0;
        if (_rest.Length < 2)
        {
            return false;
        }

        value = BinaryPrimitives.ReadUInt16BigEndian(_rest);
        _rest = _rest[2..];
        return true;
    }

    public bool Read32(out uint value)
    {
        value = 0;
        if (_rest.Length < 4)
        {
            return false;
        }

        value = BinaryPrimitives.ReadUInt32BigEndian(_rest);
        _rest = _rest[4..];
        return true;
    }

    public bool Read64(out ulong value)
    {
        value = 0;
        if (_rest.Length < 8)
        {
            return false;
        }

        value = BinaryPrimitives.ReadUInt64BigEndian(_rest);
        _rest = _rest[8..];
        return true;
    }

    /// <summary>Passes over <paramref name="count"/> bytes (read by the caller from where <see cref="Left"/> said).</summary>
    public bool Skip(int count)
    {
        if (count < 0 || _rest.Length < count)
        {
            return false;
        }

        _rest = _rest[count..];
        return true;
    }

    public bool ReadBytes(int count, out byte[] value)
    {
        value = [];
        if (_rest.Length < count)
        {
            return false;
        }

        value = _rest[..count].ToArray();
        _rest = _rest[count..];
        return true;
    }

    /// <summary>A u16 length, then that many bytes of UTF-8, at most <paramref name="maxBytes"/>.</summary>
    public bool ReadText(int maxBytes, out string value)
    {
        value = string.Empty;
        var before = _rest;
        if (!Read16(out var length) || length > maxBytes || _rest.Length < length)
        {
            _rest = before;
            return false;
        }

        try
        {
            value = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(_rest[..length]);
        }
        catch (DecoderFallbackException)
        {
            _rest = before;
            return false;
        }

        _rest = _rest[length..];
        return true;
    }
}
