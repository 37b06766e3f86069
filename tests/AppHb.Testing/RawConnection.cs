using System.Net.Sockets;
using AppHb.Protocol;

namespace AppHb.Testing;

/// <summary>Speaks frames byte by byte, for tests that must send exactly what they mean, broken frames included.</summary>
public sealed class RawConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private byte[] _buffer = new byte[FrameFormat.MaxFrameSize * 2];
    private int _filled;

    public RawConnection(Socket socket) => _socket = socket;

    public static async Task<RawConnection> ConnectAsync(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        return new RawConnection(socket);
    }

    public Socket Socket => _socket;

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await _socket.SendAsync(bytes, SocketFlags.None);
            bytes = bytes[sent..];
        }
    }

    /// <summary>The next frame, or null at end of stream.</summary>
    /// <param name="timeout">10 s by default; <see cref="Timeout.InfiniteTimeSpan"/> waits as long as it takes.</param>
    public async Task<(FrameHeader Header, byte[] Payload)?> ReceiveAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            if (FrameReader.TryReadFrame(_buffer.AsSpan(0, _filled), out var header))
            {
                var payload = _buffer.AsSpan(FrameFormat.HeaderSize, header.PayloadLength).ToArray();
                Buffer.BlockCopy(_buffer, header.FrameLength, _buffer, 0, _filled - header.FrameLength);
                _filled -= header.FrameLength;
                return (header, payload);
            }

            var read = await _socket.ReceiveAsync(_buffer.AsMemory(_filled), SocketFlags.None, cts.Token);
            if (read == 0)
            {
                return null;
            }

            _filled += read;
        }
    }

    /// <summary>Whether the daemon closed the connection (reads end of stream within the timeout).</summary>
    public async Task<bool> IsClosedByPeerAsync(TimeSpan timeout)
    {
        try
        {
            while (await ReceiveAsync(timeout) is not null)
            {
            }

            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return e is SocketException;
        }
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
