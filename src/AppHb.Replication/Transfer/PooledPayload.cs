using System.Buffers;

namespace AppHb.Replication.Transfer;

/// <summary>A message's bytes in a buffer rented from replication's pool (<see cref="ReplicationBuffers"/>), given
/// back once the message is read or sent:
/// a record's megabyte allocated per message, on both nodes, was large-object garbage at replication's rates, which
/// only a full (gen2) collection reclaims. Disposing it more than once is harmless; reading it after is an error.</summary>
public sealed class PooledPayload : IDisposable
{
    private byte[]? _buffer;

    /// <summary>A payload of <paramref name="length"/> bytes, their content not yet written.</summary>
    public PooledPayload(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _buffer = ReplicationBuffers.Pool.Rent(length);
        Length = length;
    }

    /// <summary>Takes over <paramref name="rented"/>, an array rented from <see cref="ReplicationBuffers.Pool"/>, whose first
    /// <paramref name="length"/> bytes are the payload.</summary>
    internal PooledPayload(byte[] rented, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, rented.Length);
        _buffer = rented;
        Length = length;
    }

    public int Length { get; }

    public Span<byte> Span => Buffer.AsSpan(0, Length);

    public Memory<byte> Memory => Buffer.AsMemory(0, Length);

    private byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(PooledPayload));

    public byte[] ToArray() => Span.ToArray();

    /// <summary>Told the payload's length once it is given back (<see cref="FrameReadAhead"/> counts what it
    /// received until then, wherever the payload went after it was taken).</summary>
    internal Action<int>? Released { get; set; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
        {
            ReplicationBuffers.Pool.Return(buffer);
            Released?.Invoke(Length);
        }
    }
}
