using System.Net.Sockets;
using AppHb.Protocol;

namespace AppHb.Client.Internal;

/// <summary>A frame received from the daemon; the payload is a private copy.</summary>
internal sealed record ReceivedFrame(FrameHeader Header, byte[] Payload);

/// <summary>One Unix stream connection to apphbd that sends and receives whole frames.</summary>
internal sealed class FrameConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private byte[] _buffer = new byte[512];
    private int _start;
    private int _end;
    private volatile Exception? _ended;
    private DaemonUnavailableException? _sendFailure;

    private FrameConnection(Socket socket) => _socket = socket;

    /// <summary>Why the connection ended, once its reader has seen it end; what every request still waiting on it
    /// fails with.</summary>
    public Exception? Ended
    {
        get => _ended;
        set => _ended = value;
    }

    public static async Task<FrameConnection> ConnectAsync(string socketPath, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
            return new FrameConnection(socket);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            // .NET reports a missing socket file as "address not available"; say what it means instead.
            var why = e.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable when !File.Exists(socketPath) => "the socket does not exist (is apphbd running?)",
                SocketError.AccessDenied => "permission denied (join the socket's group, see socket.group in apphbd.yaml)",
                SocketError.ConnectionRefused => "nobody listens on it (apphbd stopped or crashed)",
                _ => e.Message,
            };
            throw new DaemonUnavailableException($"cannot reach apphbd at {socketPath}: {why}", e, socketPath);
        }
    }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            while (!frame.IsEmpty)
            {
                var sent = await _socket.SendAsync(frame, SocketFlags.None, cancellationToken);
                frame = frame[sent..];
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a one-shot request and reads on even if the send fails: a connection refused as it was accepted
    /// (apphbd stopping, a limit reached) has the daemon's Error frame waiting, written before the close that broke the
    /// send. <see cref="ReceiveAsync"/> returns that frame, and reports the send's failure where the connection ends
    /// without one.</summary>
    public async ValueTask SendRequestAsync(ReadOnlyMemory<byte> frame, string socketPath, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(frame, cancellationToken);
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            _sendFailure = new DaemonUnavailableException($"lost the connection to apphbd: {e.Message}", e, socketPath);
        }
    }

    /// <summary>The next frame, or null when the daemon closed the connection.</summary>
    /// <exception cref="ProtocolException">The daemon sent something that is not a frame.</exception>
    public async ValueTask<ReceivedFrame?> ReceiveAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (FrameReader.TryReadFrame(_buffer.AsSpan(_start, _end - _start), out var header))
            {
                var payload = _buffer.AsSpan(_start + FrameFormat.HeaderSize, header.PayloadLength).ToArray();
                _start += header.FrameLength;
                return new ReceivedFrame(header, payload);
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                var bigger = new byte[Math.Min(_buffer.Length * 2, FrameFormat.MaxFrameSize)];
                Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
                _buffer = bigger;
            }

            int read;
            try
            {
                read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
            }
            catch (SocketException) when (_sendFailure is not null)
            {
                throw _sendFailure;
            }

            if (read == 0)
            {
                return _sendFailure is null ? null : throw _sendFailure;
            }

            _end += read;
        }
    }

    public void Abort() => _socket.Dispose();

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        _sendLock.Dispose();
        return ValueTask.CompletedTask;
    }
}
