using System.Runtime.ExceptionServices;
using System.Threading.Channels;

namespace AppHb.Replication.Transfer;

/// <summary>Receives a channel's frames ahead of the one who takes them, up to a budget of bytes held in memory
/// (a payload is held until it is disposed, by whoever it was handed on to):
/// the standby's cut install (its syncs) no longer stops the link, which went idle once the socket's few megabytes
/// were full, and authenticating and decrypting the next frames runs on another core meanwhile. Nothing changes
/// for what the frames mean: they are taken one at a time, in order, and a receive's failure (the peer gone, a frame
/// refused) is thrown where that frame would have been taken, after every frame before it.</summary>
public sealed class FrameReadAhead : IAsyncDisposable
{
    private readonly ReplicationChannel _channel;
    private readonly long _budget;
    private readonly Channel<(PooledPayload? Payload, ExceptionDispatchInfo? Failure)> _frames =
        Channel.CreateUnbounded<(PooledPayload?, ExceptionDispatchInfo?)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly SemaphoreSlim _room = new(0);
    private readonly CancellationTokenSource _stop;
    private readonly Task _receiving;
    private long _held;

    /// <param name="budget">At most this many payload bytes received and not yet taken (a frame is received whatever
    /// its size when nothing is held).</param>
    public FrameReadAhead(ReplicationChannel channel, long budget, CancellationToken cancellationToken)
    {
        _channel = channel ?? throw new ArgumentNullException(nameof(channel));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budget);
        _budget = budget;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _receiving = Task.Run(() => ReceiveAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>The default budget: one cut of a bulk copy (<c>Journaler.CutBytes</c>), an eighth of a second of a
    /// 1 Gbit/s link, received while the cut before it installs. 32 MiB before 2026-12-03: with the payloads in
    /// pooled buffers, what a pool may keep bounds what the standby's memory keeps after a copy, and the link
    /// reached its rate with this much.</summary>
    public const long DefaultBudget = 16L << 20;

    /// <summary>Payload bytes received and not yet disposed.</summary>
    public long HeldBytes => Interlocked.Read(ref _held);

    /// <summary>The next frame's payload (<see cref="ReplicationChannel.ReceivePooledAsync"/>'s, with its exceptions),
    /// which the caller disposes once it has read it.</summary>
    public async Task<PooledPayload> TakeAsync(CancellationToken cancellationToken)
    {
        var (payload, failure) = await _frames.Reader.ReadAsync(cancellationToken);
        failure?.Throw();
        return payload!;
    }

    private void Release(int length)
    {
        if (Interlocked.Add(ref _held, -length) < _budget && !_disposed && _room.CurrentCount == 0)
        {
            try
            {
                _room.Release();
            }
            catch (Exception e) when (e is ObjectDisposedException or SemaphoreFullException)
            {
                // Disposed meanwhile (nothing waits for room any more), or released by another payload just now.
            }
        }
    }

    private volatile bool _disposed;

    private async Task ReceiveAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                while (Volatile.Read(ref _held) >= _budget)
                {
                    await _room.WaitAsync(cancellationToken);
                }

                var payload = await _channel.ReceivePooledAsync(cancellationToken);
                Interlocked.Add(ref _held, payload.Length);
                payload.Released = Release;
                _frames.Writer.TryWrite((payload, null));
            }
        }
        catch (Exception e)
        {
            _frames.Writer.TryWrite((null, ExceptionDispatchInfo.Capture(e)));
            _frames.Writer.TryComplete();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        // It ends with its cancellation (or had ended with the connection): its failure was handed on as a frame.
        await _receiving;
        // What was received and never taken goes back to the pool.
        while (_frames.Reader.TryRead(out var left))
        {
            left.Payload?.Dispose();
        }

        _disposed = true;
        _stop.Dispose();
        _room.Dispose();
    }
}
