using System.Net;
using System.Net.Sockets;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Tests;

/// <summary>Two channels over a real loopback TCP connection, or over two joined by a relay that flips one bit in
/// the ciphertext of the sender's frame number <c>alterFrame</c> (what a faulty link or an attacker on it would do).</summary>
internal sealed class Connected : IAsyncDisposable
{
    public const ushort ActiveNode = 1;
    public const ushort StandbyNode = 2;

    private readonly List<IDisposable> _owned = [];
    private readonly CancellationTokenSource _relayStop = new();
    private readonly List<Task> _relays = [];

    public ReplicationChannel Sender { get; private set; } = null!;

    public ReplicationChannel Receiver { get; private set; } = null!;

    /// <param name="sendsReturnLate">When positive, each of the sender's writes returns this long after its bytes
    /// went (a thread descheduled right after its send): the peer may answer a frame before its send has returned.</param>
    public static async Task<Connected> OpenAsync(byte[] senderKey, byte[] receiverKey, int alterFrame = 0, TimeSpan sendsReturnLate = default)
    {
        var connected = new Connected();
        var (senderNetworkStream, receiverStream) = await connected.SocketPairAsync();
        Stream senderStream = sendsReturnLate > TimeSpan.Zero ? new LateReturningStream(senderNetworkStream, sendsReturnLate) : senderNetworkStream;
        if (alterFrame > 0)
        {
            var (relayOut, receiverEnd) = await connected.SocketPairAsync();
            connected._relays.Add(ForwardFrames(receiverStream, relayOut, alterFrame, connected._relayStop.Token));
            connected._relays.Add(relayOut.CopyToAsync(receiverStream, connected._relayStop.Token));
            receiverStream = receiverEnd;
        }

        var opening = ReplicationChannel.OpenAsync(senderStream, senderKey, ReplicationSide.Sender, ActiveNode, StandbyNode, CancellationToken.None);
        connected.Receiver = await ReplicationChannel.OpenAsync(receiverStream, receiverKey, ReplicationSide.Receiver, StandbyNode, ActiveNode, CancellationToken.None);
        connected.Sender = await opening;
        return connected;
    }

    /// <summary>The sender's hello as it is, then its frames one by one, frame <paramref name="alterFrame"/> with
    /// the first byte after its header flipped.</summary>
    private static async Task ForwardFrames(NetworkStream from, NetworkStream to, int alterFrame, CancellationToken cancellationToken)
    {
        var hello = new byte[ReplicationHello.Size];
        await from.ReadExactlyAsync(hello, cancellationToken);
        await to.WriteAsync(hello, cancellationToken);
        for (var frame = 1; ; frame++)
        {
            var header = new byte[4];
            await from.ReadExactlyAsync(header, cancellationToken);
            var rest = new byte[System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header)];
            await from.ReadExactlyAsync(rest, cancellationToken);
            if (frame == alterFrame)
            {
                rest[FrameSealer.HeaderSize - 4] ^= 0x10;
            }

            await to.WriteAsync(header, cancellationToken);
            await to.WriteAsync(rest, cancellationToken);
        }
    }

    private async Task<(NetworkStream, NetworkStream)> SocketPairAsync()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient();
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        var server = await listener.AcceptTcpClientAsync();
        _owned.Add(client);
        _owned.Add(server);
        return (client.GetStream(), server.GetStream());
    }

    /// <summary>Closes the sender's socket only: what it sent before is still there for the receiver to read, then the
    /// connection's end.</summary>
    public void CloseSenderEnd() => _owned[0].Dispose();

    /// <summary>Closes every socket: both ends see the connection end.</summary>
    public void Close()
    {
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _relayStop.CancelAsync();
        Close();
        foreach (var relay in _relays)
        {
            try
            {
                await relay;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or EndOfStreamException)
            {
            }
        }

        Sender?.Dispose();
        Receiver?.Dispose();
        _relayStop.Dispose();
    }
}

/// <summary>A stream whose writes return <paramref name="late"/> after their bytes were written.</summary>
internal sealed class LateReturningStream(Stream inner, TimeSpan late) : Stream
{
    public override bool CanRead => inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => inner.CanWrite;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await inner.WriteAsync(buffer, cancellationToken);
        await Task.Delay(late, cancellationToken);
    }
}
