using System.Buffers;

namespace AppHb.Protocol;

/// <summary>Encodes whole frames (header and payload) into a buffer writer or a new array.</summary>
public static class FrameWriter
{
    /// <summary>Writes a frame whose payload is <paramref name="message"/>.</summary>
    public static void Write<T>(IBufferWriter<byte> output, T message, uint sequence, FrameFlags flags = FrameFlags.None)
        where T : IMessage<T>
    {
        var size = message.PayloadSize;
        var span = output.GetSpan(FrameFormat.HeaderSize + size);
        new FrameHeader(T.Type, flags, sequence, size).Write(span);
        var writer = new PayloadWriter(span.Slice(FrameFormat.HeaderSize, size));
        message.WritePayload(ref writer);
        output.Advance(FrameFormat.HeaderSize + size);
    }

    /// <summary>Writes a frame with an empty payload (Beat, Unregister, StatusRequest, Subscribe, Ok).</summary>
    public static void WriteEmpty(IBufferWriter<byte> output, FrameType type, uint sequence, FrameFlags flags = FrameFlags.None)
    {
        var span = output.GetSpan(FrameFormat.HeaderSize);
        new FrameHeader(type, flags, sequence, 0).Write(span);
        output.Advance(FrameFormat.HeaderSize);
    }

    /// <summary>Writes a frame whose payload is raw bytes (the JSON documents of Status and Event).</summary>
    public static void WriteRaw(IBufferWriter<byte> output, FrameType type, uint sequence, ReadOnlySpan<byte> payload,
        FrameFlags flags = FrameFlags.None)
    {
        if (payload.Length > FrameFormat.MaxPayloadSize)
        {
            throw new ArgumentOutOfRangeException(nameof(payload), payload.Length, $"payload exceeds {FrameFormat.MaxPayloadSize} bytes");
        }

        var span = output.GetSpan(FrameFormat.HeaderSize + payload.Length);
        new FrameHeader(type, flags, sequence, payload.Length).Write(span);
        payload.CopyTo(span[FrameFormat.HeaderSize..]);
        output.Advance(FrameFormat.HeaderSize + payload.Length);
    }

    /// <summary>Writes a document of any size as consecutive frames of <paramref name="type"/>, all but the last
    /// flagged <see cref="FrameFlags.More"/>.</summary>
    public static void WriteDocument(IBufferWriter<byte> output, FrameType type, uint sequence, ReadOnlySpan<byte> document)
    {
        do
        {
            var chunk = document[..Math.Min(document.Length, FrameFormat.MaxPayloadSize)];
            document = document[chunk.Length..];
            WriteRaw(output, type, sequence, chunk, document.IsEmpty ? FrameFlags.None : FrameFlags.More);
        }
        while (!document.IsEmpty);
    }

    /// <summary>Encodes one frame to a new array; convenient off the hot path and in tests.</summary>
    public static byte[] ToArray<T>(T message, uint sequence, FrameFlags flags = FrameFlags.None) where T : IMessage<T>
    {
        var buffer = new ArrayBufferWriter<byte>(FrameFormat.HeaderSize + message.PayloadSize);
        Write(buffer, message, sequence, flags);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Encodes one raw-payload frame to a new array.</summary>
    public static byte[] ToArrayRaw(FrameType type, uint sequence, ReadOnlySpan<byte> payload)
    {
        var buffer = new ArrayBufferWriter<byte>(FrameFormat.HeaderSize + payload.Length);
        WriteRaw(buffer, type, sequence, payload);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Encodes one empty frame to a new array.</summary>
    public static byte[] EmptyToArray(FrameType type, uint sequence, FrameFlags flags = FrameFlags.None)
    {
        var buffer = new ArrayBufferWriter<byte>(FrameFormat.HeaderSize);
        WriteEmpty(buffer, type, sequence, flags);
        return buffer.WrittenSpan.ToArray();
    }
}
