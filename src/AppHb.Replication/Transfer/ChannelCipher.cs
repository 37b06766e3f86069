using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace AppHb.Replication.Transfer;

/// <summary>The two keys of one replication connection, one per direction, derived with HKDF-SHA256 from the pair's
/// cluster key and a random salt each side sends when the connection opens: a new connection (after a reconnect in the
/// same boot included) never reuses a key, so its frame counters may start at 1 again without ever repeating a nonce.</summary>
public sealed record ChannelKeys(byte[] ActiveToStandby, byte[] StandbyToActive)
{
    public const int SaltSize = 32;
    private static readonly byte[] Label = Encoding.ASCII.GetBytes("AppHb replication v1");

    public static ChannelKeys Derive(ReadOnlySpan<byte> clusterKey, ReadOnlySpan<byte> activeSalt, ReadOnlySpan<byte> standbySalt)
    {
        if (clusterKey.Length < 32 || activeSalt.Length != SaltSize || standbySalt.Length != SaltSize)
        {
            throw new ArgumentException($"a cluster key of 32 bytes or more and two salts of {SaltSize} bytes");
        }

        var salt = new byte[Label.Length + 2 * SaltSize];
        Label.CopyTo(salt, 0);
        activeSalt.CopyTo(salt.AsSpan(Label.Length));
        standbySalt.CopyTo(salt.AsSpan(Label.Length + SaltSize));
        Span<byte> prk = stackalloc byte[32];
        HKDF.Extract(HashAlgorithmName.SHA256, clusterKey, salt, prk);
        var activeToStandby = new byte[32];
        var standbyToActive = new byte[32];
        HKDF.Expand(HashAlgorithmName.SHA256, prk, activeToStandby, "active to standby"u8);
        HKDF.Expand(HashAlgorithmName.SHA256, prk, standbyToActive, "standby to active"u8);
        return new ChannelKeys(activeToStandby, standbyToActive);
    }
}

/// <summary>Seals the frames one side sends: AES-256-GCM, the frame's counter as the nonce, the header as associated
/// data. A frame: length of what follows (u32), counter (u64), ciphertext, 16-byte tag.</summary>
public sealed class FrameSealer(byte[] key) : IDisposable
{
    public const int HeaderSize = 12;
    public const int TagSize = 16;
    /// <summary>Bounds a frame (a journal record and a little more).</summary>
    public const int MaxPayload = 33 * 1024 * 1024;
    private readonly AesGcm _aes = new(key, TagSize);
    private ulong _counter;

    /// <summary>How long the frame of a payload of <paramref name="payloadLength"/> bytes is.</summary>
    public static int FrameLength(int payloadLength) => HeaderSize + payloadLength + TagSize;

    public byte[] Seal(ReadOnlySpan<byte> payload)
    {
        var frame = new byte[FrameLength(payload.Length)];
        Seal(payload, frame);
        return frame;
    }

    /// <summary>Seals <paramref name="payload"/> into <paramref name="frame"/>, exactly
    /// <see cref="FrameLength"/> bytes (a buffer the caller reuses: a frame is up to a journal record's size, and one
    /// allocated per frame made the collector's large-object heap churn at replication's rates).</summary>
    public void Seal(ReadOnlySpan<byte> payload, Span<byte> frame)
    {
        if (payload.Length > MaxPayload)
        {
            throw new ArgumentException($"a frame carries at most {MaxPayload} bytes", nameof(payload));
        }

        if (frame.Length != FrameLength(payload.Length))
        {
            throw new ArgumentException($"a frame of {FrameLength(payload.Length)} bytes, not {frame.Length}", nameof(frame));
        }

        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(8 + payload.Length + TagSize));
        BinaryPrimitives.WriteUInt64BigEndian(frame[4..], ++_counter);
        _aes.Encrypt(FrameNonce.Of(_counter), payload, frame.Slice(HeaderSize, payload.Length), frame.Slice(HeaderSize + payload.Length), frame[..HeaderSize]);
    }

    public void Dispose() => _aes.Dispose();
}

/// <summary>Opens the frames the other side sent, in order: a frame whose tag does not match (another key, a flipped
/// bit, a forged frame) or whose counter is not the next one (replayed, dropped, reordered) is refused with the
/// reason, and the connection is to be closed (a resync follows), never skipped.</summary>
public sealed class FrameOpener(byte[] key) : IDisposable
{
    private readonly AesGcm _aes = new(key, FrameSealer.TagSize);
    private ulong _expected = 1;

    /// <summary>The payload, or null with <paramref name="problem"/> saying why the frame is refused.</summary>
    public byte[]? Open(ReadOnlySpan<byte> frame, out string? problem)
    {
        var payload = new byte[Math.Max(0, PayloadLength(frame.Length))];
        return TryOpen(frame, payload, out problem) ? payload : null;
    }

    /// <summary>How long the payload of a frame of <paramref name="frameLength"/> bytes is (negative: too short to be
    /// a frame).</summary>
    public static int PayloadLength(int frameLength) => frameLength - FrameSealer.HeaderSize - FrameSealer.TagSize;

    /// <summary>Opens <paramref name="frame"/> into <paramref name="payload"/> (<see cref="PayloadLength"/> bytes);
    /// false with <paramref name="problem"/> saying why the frame is refused (the payload's bytes then mean nothing).</summary>
    public bool TryOpen(ReadOnlySpan<byte> frame, Span<byte> payload, out string? problem)
    {
        problem = null;
        if (frame.Length < FrameSealer.HeaderSize + FrameSealer.TagSize || BinaryPrimitives.ReadUInt32BigEndian(frame) != frame.Length - 4)
        {
            problem = $"a frame of {frame.Length} bytes whose length field says otherwise";
            return false;
        }

        var counter = BinaryPrimitives.ReadUInt64BigEndian(frame.Slice(4));
        if (counter != _expected)
        {
            problem = $"frame {counter} where frame {_expected} was due (replayed, lost or reordered)";
            return false;
        }

        var length = PayloadLength(frame.Length);
        if (payload.Length != length)
        {
            throw new ArgumentException($"a payload of {length} bytes goes into exactly that many, not {payload.Length}", nameof(payload));
        }

        try
        {
            _aes.Decrypt(FrameNonce.Of(counter), frame.Slice(FrameSealer.HeaderSize, length), frame.Slice(FrameSealer.HeaderSize + length), payload, frame[..FrameSealer.HeaderSize]);
        }
        catch (AuthenticationTagMismatchException)
        {
            problem = $"frame {counter} fails authentication (another key, or altered on the way)";
            return false;
        }

        _expected++;
        return true;
    }

    public void Dispose() => _aes.Dispose();
}

internal static class FrameNonce
{
    /// <summary>A 96-bit GCM nonce: four zero bytes, then the counter.</summary>
    public static byte[] Of(ulong counter)
    {
        var nonce = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(nonce.AsSpan(4), counter);
        return nonce;
    }
}
