using System.Buffers;
using System.Net.Sockets;
using AppHb.Daemon.Events;
using AppHb.Core.Heartbeats;
using AppHb.Daemon.Status;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;
using AppHb.Protocol;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Clients;

/// <summary>Serves one connection. Its first frame decides what it is: a heartbeat client (Register), a one-shot
/// status reader (StatusRequest) or an event watcher (Subscribe). Any protocol violation gets one Error frame naming
/// the problem and closes this connection only; nothing it sends can reach another client's state.</summary>
internal sealed class ClientConnection : IDisposable
{
    private const int InitialBufferSize = 256;

    private readonly Socket _socket;
    private readonly HeartbeatRegistry _registry;
    private readonly EventBroadcaster _broadcaster;
    private readonly ProcessExitWatcher _exits;
    private IDisposable? _exitWatch;
    private readonly StatusReporter _status;
    private readonly ControlHandler _control;
    private readonly ILogger _logger;
    // Created on first send: most connections are heartbeat clients that never get a reply after registering.
    private SemaphoreSlim? _sendLock;
    private readonly PeerCredentials _peer;
    private Role _role;
    private RegisteredClient? _client;
    private bool _replayHistory;
    private uint _subscribeSequence;
    private bool _watching;

    public ClientConnection(Socket socket, HeartbeatRegistry registry, EventBroadcaster broadcaster, ProcessExitWatcher exits,
        StatusReporter status, ControlHandler control, ILogger logger)
    {
        _control = control;
        _socket = socket;
        _registry = registry;
        _broadcaster = broadcaster;
        _exits = exits;
        _status = status;
        _logger = logger;
        _peer = ReadPeerCredentials(socket);
    }

    private enum Role
    {
        New,
        Client,
        Unregistered,
        Watcher,
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var reason = "connection closed";
        // A pending receive pins its buffer for as long as the client is idle, which for a heartbeat client is
        // almost always. Thousands of pinned arrays scattered through the normal heap fragment it; the pinned
        // object heap is made for exactly this.
        var buffer = GC.AllocateUninitializedArray<byte>(InitialBufferSize, pinned: true);
        var filled = 0;
        try
        {
            while (true)
            {
                var read = await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken);
                if (read == 0)
                {
                    break;
                }

                filled += read;
                var offset = 0;
                try
                {
                    while (FrameReader.TryReadFrame(buffer.AsSpan(offset, filled - offset), out var header))
                    {
                        var payload = buffer.AsSpan(offset + FrameFormat.HeaderSize, header.PayloadLength);
                        byte[]? reply;
                        if (header.Type == FrameType.Control)
                        {
                            // Decoded before the await: the payload is a span over the receive buffer.
                            var control = ReadControl(header, payload);
                            offset += header.FrameLength;
                            reply = await HandleControlAsync(control, header.Sequence, cancellationToken);
                        }
                        else
                        {
                            reply = Handle(header, payload);
                            offset += header.FrameLength;
                        }
                        if (reply is not null)
                        {
                            await SendAsync(reply, cancellationToken);
                        }

                        if (_role == Role.Watcher && _watching is false)
                        {
                            // The broadcaster sends the Ok, then the events: none precedes it, none published after
                            // it is missed.
                            _broadcaster.Add(_socket, _peer.Pid, _replayHistory, FrameWriter.EmptyToArray(FrameType.Ok, _subscribeSequence));
                            _watching = true;
                        }
                    }
                }
                catch (ProtocolException e)
                {
                    // Answer the frame that broke the rule (offset still points at it), not the last good one.
                    var sequence = FrameReader.PeekSequence(buffer.AsSpan(offset, filled - offset)) ?? 0;
                    Log.ProtocolViolation(_logger, _peer.Pid, _peer.Uid, sequence, e.Code.ToString(), e.Message);
                    reason = $"protocol error: {e.Message}";
                    await TrySendAsync(FrameWriter.ToArray(ErrorReply.Create(e.Code, e.Message), sequence), cancellationToken);
                    return;
                }

                // Keep the unread tail; grow only for a frame that is known (from its header) to need it.
                Buffer.BlockCopy(buffer, offset, buffer, 0, filled - offset);
                filled -= offset;
                if (filled == buffer.Length)
                {
                    var needed = filled >= FrameFormat.HeaderSize && FrameReaderPeek(buffer, out var length) ? length : buffer.Length * 2;
                    var larger = GC.AllocateUninitializedArray<byte>(Math.Min(Math.Max(needed, buffer.Length * 2), FrameFormat.MaxFrameSize), pinned: true);
                    Buffer.BlockCopy(buffer, 0, larger, 0, filled);
                    buffer = larger;
                }
                else if (filled == 0 && buffer.Length > InitialBufferSize)
                {
                    // A large frame came and went: give the memory back.
                    buffer = GC.AllocateUninitializedArray<byte>(InitialBufferSize, pinned: true);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            reason = "apphbd is stopping";
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            reason = $"connection failed: {e.Message}";
        }
        catch (Exception e)
        {
            Log.ConnectionFailed(_logger, _peer.Pid, e);
            reason = $"internal error: {e.Message}";
        }
        finally
        {
            _exitWatch?.Dispose();
            if (_client is not null)
            {
                _registry.Disconnect(_client, reason);
            }

            if (_watching)
            {
                _broadcaster.Remove(_socket);
            }

            Dispose();
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        _sendLock?.Dispose();
    }

    /// <summary>Runs a control request while watching for apphbctl to leave: a zero-byte receive completes when the
    /// socket is readable, and nothing to read then means the peer closed (or shut down its sending side).</summary>
    private async Task<byte[]> HandleControlAsync(ControlRequest control, uint sequence, CancellationToken cancellationToken)
    {
        using var left = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var handling = _control.HandleAsync(control, sequence, _peer, left.Token);
        var readable = _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, left.Token).AsTask();
        if (await Task.WhenAny(handling, readable) == readable && !readable.IsFaulted && !readable.IsCanceled && _socket.Available == 0)
        {
            await left.CancelAsync();
        }

        var reply = await handling;
        await left.CancelAsync();
        await readable.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        return reply;
    }

    private static bool FrameReaderPeek(byte[] buffer, out int frameLength)
    {
        try
        {
            FrameReader.TryReadFrame(buffer, out var header);
            frameLength = header.FrameLength;
            return true;
        }
        catch (ProtocolException)
        {
            frameLength = 0;
            return false;
        }
    }

    private ControlRequest ReadControl(FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_role is Role.Client or Role.Watcher)
        {
            throw OutOfOrder(header, "this connection is already " + Describe(_role));
        }

        return ControlRequest.Read(payload);
    }

    /// <summary>Acts on one frame. Returns the reply to send, if any.</summary>
    private byte[]? Handle(FrameHeader header, ReadOnlySpan<byte> payload)
    {
        try
        {
            return HandleFrame(header, payload);
        }
        catch (RegistryException e) when (e.Refusal == RegistryRefusal.NotRegistered)
        {
            // The registry declared the client dead (its process exited) while this connection lived on.
            throw new ProtocolException(ErrorCode.OutOfOrder, $"{header.Type} frame is out of order: {e.Message} (declared dead)");
        }
    }

    private byte[]? HandleFrame(FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (!FrameReader.IsRequest(header.Type))
        {
            throw new ProtocolException(ErrorCode.UnknownType, $"{header.Type} (0x{(byte)header.Type:x2}) is a reply type; clients may not send it");
        }

        switch (header.Type)
        {
            case FrameType.Beat:
                EnsurePayloadEmpty(header);
                _registry.Beat(RequireClient(header));
                return (header.Flags & FrameFlags.AckRequested) != 0 ? FrameWriter.EmptyToArray(FrameType.Ok, header.Sequence) : null;

            case FrameType.Register:
                if (_role != Role.New)
                {
                    throw OutOfOrder(header, "this connection is already " + Describe(_role) + "; one connection registers one client");
                }

                var request = RegisterRequest.Read(payload);
                HeartbeatTiming timing;
                try
                {
                    timing = HeartbeatTiming.FromMilliseconds(request.IntervalMs, request.WarnMs);
                }
                catch (ArgumentException e)
                {
                    return Error(header, ErrorCode.InvalidArgument, $"Register: {FirstSentence(e.Message)}");
                }

                try
                {
                    _client = _registry.Register(new ClientIdentity(request.Name, request.Instance, _peer), timing);
                }
                catch (RegistryException e)
                {
                    return Error(header, e.Refusal == RegistryRefusal.Conflict ? ErrorCode.Conflict : ErrorCode.LimitReached, e.Message);
                }

                _role = Role.Client;
                WatchForExit(_client);
                return FrameWriter.ToArray(new RegisteredReply(_client.Id, _peer.Pid, _peer.Uid, _peer.Gid), header.Sequence);

            case FrameType.SetInterval:
            {
                var client = RequireClient(header);
                var interval = SetIntervalRequest.Read(payload).IntervalMs;
                return ChangeTiming(header, client, TimeSpan.FromMilliseconds(interval), CurrentWarn(client));
            }

            case FrameType.SetWarn:
            {
                var client = RequireClient(header);
                var warn = SetWarnRequest.Read(payload).WarnMs;
                return ChangeTiming(header, client, CurrentInterval(client), TimeSpan.FromMilliseconds(warn));
            }

            case FrameType.Unregister:
                EnsurePayloadEmpty(header);
                _registry.Unregister(RequireClient(header));
                _exitWatch?.Dispose();
                _client = null;
                _role = Role.Unregistered;
                return FrameWriter.EmptyToArray(FrameType.Ok, header.Sequence);

            case FrameType.StatusRequest:
                EnsurePayloadEmpty(header);
                if (_role == Role.Watcher)
                {
                    throw OutOfOrder(header, "this connection is an event stream");
                }

                var document = new ArrayBufferWriter<byte>();
                FrameWriter.WriteDocument(document, FrameType.Status, header.Sequence, _status.SerializeStatus());
                return document.WrittenSpan.ToArray();

            case FrameType.Subscribe:
                EnsurePayloadEmpty(header);
                if (_role != Role.New)
                {
                    throw OutOfOrder(header, "this connection is already " + Describe(_role));
                }

                _replayHistory = (header.Flags & FrameFlags.ReplayHistory) != 0;
                _subscribeSequence = header.Sequence;
                _role = Role.Watcher;
                return null;

            default:
                throw new ProtocolException(ErrorCode.UnknownType, $"frame type 0x{(byte)header.Type:x2} is unknown");
        }
    }

    /// <summary>The socket closing is not the only way to die: a child that inherited it can keep it open after the
    /// registered process is gone. The pidfd says so the moment it happens.</summary>
    /// <remarks>A method of its own on purpose: a lambda capturing locals of a switch section makes the compiler
    /// allocate its closure on entry to the switch, that is on every frame, beats included (found by allocation
    /// sampling: 15 MB per 400,000 beats).</remarks>
    private void WatchForExit(RegisteredClient client)
    {
        var pid = _peer.Pid;
        try
        {
            _exitWatch = _exits.Watch(pid, () => _registry.Disconnect(client, $"process {pid} exited"));
        }
        catch (IOException e)
        {
            // Out of descriptors or over budget: the client is still watched through its socket. Said at the 1st,
            // 10th, 100th... refusal, so a burst of registrations does not flood the journal.
            var refused = _exits.Unwatched;
            if (refused > 0 && Math.Log10(refused) % 1 == 0)
            {
                Log.ExitWatchUnavailable(_logger, refused, e.Message);
            }
        }
    }

    private byte[] ChangeTiming(FrameHeader header, RegisteredClient client, TimeSpan interval, TimeSpan warn)
    {
        try
        {
            _registry.ChangeTiming(client, HeartbeatTiming.Create(interval, warn));
            return FrameWriter.EmptyToArray(FrameType.Ok, header.Sequence);
        }
        catch (ArgumentException e)
        {
            return Error(header, ErrorCode.InvalidArgument, $"{header.Type}: {FirstSentence(e.Message)}");
        }
    }

    private TimeSpan CurrentWarn(RegisteredClient client) => _registry.TimingOf(client).Warn;

    private TimeSpan CurrentInterval(RegisteredClient client) => _registry.TimingOf(client).Interval;

    private RegisteredClient RequireClient(FrameHeader header) => _role == Role.Client && _client is not null
        ? _client
        : throw OutOfOrder(header, _role == Role.New ? "Register first" : "this connection is " + Describe(_role));

    private static ProtocolException OutOfOrder(FrameHeader header, string why) =>
        new(ErrorCode.OutOfOrder, $"{header.Type} frame is out of order: {why}");

    private static void EnsurePayloadEmpty(FrameHeader header)
    {
        if (header.PayloadLength != 0)
        {
            throw new ProtocolException(ErrorCode.Malformed, $"{header.Type} frame must have an empty payload, found {header.PayloadLength} byte(s)");
        }
    }

    private static byte[] Error(FrameHeader header, ErrorCode code, string message) =>
        FrameWriter.ToArray(ErrorReply.Create(code, message), header.Sequence);

    private static string Describe(Role role) => role switch
    {
        Role.Client => "a registered client",
        Role.Unregistered => "unregistered",
        Role.Watcher => "an event stream",
        _ => "new",
    };

    private static string FirstSentence(string message)
    {
        // ArgumentException appends " (Parameter 'x')"; the wire message should read as one sentence.
        var cut = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        return cut < 0 ? message : message[..cut];
    }

    private async ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        var sendLock = LazyInitializer.EnsureInitialized(ref _sendLock, static () => new SemaphoreSlim(1, 1));
        await sendLock.WaitAsync(cancellationToken);
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
            sendLock.Release();
        }
    }

    private async ValueTask TrySendAsync(byte[] frame, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // A peer that does not read must not hold this connection open.
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            await SendAsync(frame, timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
    }

    private static PeerCredentials ReadPeerCredentials(Socket socket)
    {
        var (pid, uid, gid) = UnixAccounts.PeerOf(socket);
        return new PeerCredentials(pid, uid, gid);
    }
}
