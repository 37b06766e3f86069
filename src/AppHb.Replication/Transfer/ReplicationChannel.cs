using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace AppHb.Replication.Transfer;

/// <summary>One replication connection after its hello: sealed frames each way (<see cref="FrameSealer"/>,
/// <see cref="FrameOpener"/>) over any stream (a TCP connection on the dedicated link). Sends may come from any
/// thread; one reader receives.</summary>
public sealed class ReplicationChannel : IDisposable
{
    /// <summary>The largest frame accepted from the peer: a sealed payload of the largest size and its header.</summary>
    public const int MaxFrame = FrameSealer.HeaderSize + FrameSealer.MaxPayload + FrameSealer.TagSize;

    private readonly Stream _stream;
    private readonly FrameSealer _sealer;
    private readonly FrameOpener _opener;
    private readonly SemaphoreSlim _sending = new(1, 1);

    private ReplicationChannel(Stream stream, ReplicationHello peer, FrameSealer sealer, FrameOpener opener)
    {
        _stream = stream;
        Peer = peer;
        _sealer = sealer;
        _opener = opener;
    }

    /// <summary>The peer's hello.</summary>
    public ReplicationHello Peer { get; }

    /// <summary>Exchanges hellos on <paramref name="stream"/> and derives the connection's keys.</summary>
    /// <exception cref="ReplicationRefusedException">The peer is not a replication peer, speaks another version, is
    /// the same side, or is another node; or it closed the connection during the hello.</exception>
    public static async Task<ReplicationChannel> OpenAsync(Stream stream, ReadOnlyMemory<byte> clusterKey, ReplicationSide side, ushort nodeId, ushort peerNodeId,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var mine = ReplicationHello.Create(side, nodeId);
        await stream.WriteAsync(mine.Encode(), cancellationToken);
        await stream.FlushAsync(cancellationToken);
        var bytes = new byte[ReplicationHello.Size];
        var read = await stream.ReadAtLeastAsync(bytes, bytes.Length, throwOnEndOfStream: false, cancellationToken);
        if (read < bytes.Length)
        {
            throw new ReplicationRefusedException(read == 0
                ? "the peer closed the connection before its hello (it may have refused this node's: see its log)"
                : $"the peer closed the connection after {read} bytes of its {ReplicationHello.Size}-byte hello");
        }

        var peer = ReplicationHello.Decode(bytes, side, peerNodeId);
        var keys = side == ReplicationSide.Sender
            ? ChannelKeys.Derive(clusterKey.Span, mine.Salt, peer.Salt)
            : ChannelKeys.Derive(clusterKey.Span, peer.Salt, mine.Salt);
        var (seal, open) = side == ReplicationSide.Sender
            ? (keys.ActiveToStandby, keys.StandbyToActive)
            : (keys.StandbyToActive, keys.ActiveToStandby);
        return new ReplicationChannel(stream, peer, new FrameSealer(seal), new FrameOpener(open));
    }

    /// <summary>Whether the payloads this side sends are deflated when that makes them smaller (replication's
    /// `compress`, set by the sender's session at its start): for a link slower than the CPU can deflate, a file of
    /// text or a database's sparse pages goes in a fraction of its bytes. Whatever this side does, a compressed
    /// payload from the peer is inflated.</summary>
    public bool CompressOutgoing { get; set; }

    /// <summary>Bytes of payloads sent, before compression.</summary>
    public long PayloadBytesSent => Volatile.Read(ref _payloadBytesSent);

    /// <summary>Bytes of payloads sent as they went (compressed where that was smaller), before sealing.</summary>
    public long CompressedBytesSent => Volatile.Read(ref _compressedBytesSent);

    private long _payloadBytesSent;
    private long _compressedBytesSent;

    /// <summary>A payload shorter than this is sent as it is: deflate's own header and the length would eat most of
    /// what it could save, for the cost of a deflater per message.</summary>
    private const int CompressFrom = 256;

    public Task SendAsync(byte[] payload, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(payload);
        return SendAsync(payload.AsMemory(), cancellationToken);
    }

    /// <summary>Sends one message; <paramref name="payload"/> is read before this returns and not kept.</summary>
    public async Task SendAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        // Outside the lock: the receiver's acknowledgements and the sender's records do not wait for each other's
        // deflating.
        var compressed = CompressOutgoing && payload.Length >= CompressFrom ? Compress(payload.Span) : null;
        var sent = compressed is null ? payload : compressed;
        await _sending.WaitAsync(cancellationToken);
        try
        {
            // Sealed under the lock: the counter (the nonce) must follow the order frames go out in. Into a pooled
            // buffer: the frame is written and forgotten, and a record's worth of bytes allocated per frame was
            // large-object garbage at replication's rates.
            var length = FrameSealer.FrameLength(sent.Length);
            var frame = ReplicationBuffers.Pool.Rent(length);
            try
            {
                _sealer.Seal(sent.Span, frame.AsSpan(0, length));
                await _stream.WriteAsync(frame.AsMemory(0, length), cancellationToken);
                await _stream.FlushAsync(cancellationToken);
            }
            finally
            {
                ReplicationBuffers.Pool.Return(frame);
            }

            _payloadBytesSent += payload.Length;
            _compressedBytesSent += sent.Length;
        }
        finally
        {
            _sending.Release();
        }
    }

    /// <summary><paramref name="payload"/> as a <see cref="ReplicationMessageKind.Compressed"/> message, or null
    /// when deflating does not make it smaller (random or already compressed data).</summary>
    private static byte[]? Compress(ReadOnlySpan<byte> payload)
    {
        var output = new MemoryStream(payload.Length / 2 + 64);
        output.WriteByte((byte)ReplicationMessageKind.Compressed);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)payload.Length);
        output.Write(length);
        using (var deflate = new DeflateStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            deflate.Write(payload);
        }

        return output.Length < payload.Length ? output.ToArray() : null;
    }

    /// <summary>What a <see cref="ReplicationMessageKind.Compressed"/> message holds: exactly the length it announces
    /// (never more: a frame that inflates beyond it is refused before it is read on), and not itself compressed.</summary>
    private static PooledPayload Inflate(byte[] message)
    {
        if (message.Length < 5)
        {
            throw new ReplicationRefusedException($"a compressed message of {message.Length} bytes: too short to hold its length");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(message.AsSpan(1));
        if (length > FrameSealer.MaxPayload)
        {
            throw new ReplicationRefusedException($"a compressed message announcing {length} bytes, more than a message may hold ({FrameSealer.MaxPayload})");
        }

        var payload = new PooledPayload((int)length);
        try
        {
            using var inflate = new DeflateStream(new MemoryStream(message, 5, message.Length - 5, writable: false), CompressionMode.Decompress);
            var read = inflate.ReadAtLeast(payload.Span, payload.Length, throwOnEndOfStream: false);
            if (read < payload.Length || inflate.Read(stackalloc byte[1]) != 0)
            {
                throw new ReplicationRefusedException($"a compressed message that does not inflate to the {length} bytes it announces");
            }

            if (payload.Length > 0 && payload.Span[0] == (byte)ReplicationMessageKind.Compressed)
            {
                throw new ReplicationRefusedException("a compressed message inside a compressed message");
            }

            return payload;
        }
        catch (InvalidDataException e)
        {
            payload.Dispose();
            throw new ReplicationRefusedException($"a compressed message whose deflate stream is damaged: {e.Message}");
        }
        catch
        {
            payload.Dispose();
            throw;
        }
    }

    /// <summary>The next frame's payload, authenticated and in order.</summary>
    /// <exception cref="ReplicationRefusedException">The peer closed the connection, or sent a frame that is too
    /// large, fails authentication, or is not the next one: the reason is in the message; nothing of it is returned.</exception>
    public async Task<byte[]> ReceiveAsync(CancellationToken cancellationToken)
    {
        using var payload = await ReceivePooledAsync(cancellationToken);
        return payload.ToArray();
    }

    /// <summary><see cref="ReceiveAsync"/>'s payload in a pooled buffer, which the caller disposes once it has read
    /// it (the standby's records: a megabyte each).</summary>
    /// <exception cref="ReplicationRefusedException">As <see cref="ReceiveAsync"/>.</exception>
    public async Task<PooledPayload> ReceivePooledAsync(CancellationToken cancellationToken)
    {
        var header = new byte[4];
        if (await _stream.ReadAtLeastAsync(header, 4, throwOnEndOfStream: false, cancellationToken) < 4)
        {
            throw new ReplicationRefusedException("the peer closed the connection");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length > MaxFrame - 4 || length < FrameSealer.HeaderSize - 4 + FrameSealer.TagSize)
        {
            throw new ReplicationRefusedException($"a frame announcing {length} bytes (between {FrameSealer.HeaderSize - 4 + FrameSealer.TagSize} and {MaxFrame - 4} are possible): not a frame of this protocol, or a corrupted length");
        }

        // The frame in a pooled buffer, opened into another.
        var frame = ReplicationBuffers.Pool.Rent(4 + (int)length);
        PooledPayload? payload = null;
        try
        {
            header.CopyTo(frame, 0);
            if (await _stream.ReadAtLeastAsync(frame.AsMemory(4, (int)length), (int)length, throwOnEndOfStream: false, cancellationToken) < length)
            {
                throw new ReplicationRefusedException($"the peer closed the connection in the middle of a {length}-byte frame");
            }

            var sealedFrame = frame.AsSpan(0, 4 + (int)length);
            payload = new PooledPayload(FrameOpener.PayloadLength(sealedFrame.Length));
            if (!_opener.TryOpen(sealedFrame, payload.Span, out var problem))
            {
                throw new ReplicationRefusedException(problem!);
            }

            if (payload.Length > 0 && payload.Span[0] == (byte)ReplicationMessageKind.Compressed)
            {
                // Copied out for the inflating stream, which reads an array: compressed, it is the smaller one.
                return Inflate(payload.ToArray());
            }

            var opened = payload;
            payload = null;
            return opened;
        }
        finally
        {
            payload?.Dispose();
            ReplicationBuffers.Pool.Return(frame);
        }
    }

    public void Dispose()
    {
        _sealer.Dispose();
        _opener.Dispose();
        _sending.Dispose();
    }
}
