using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using AppHb.Core.Heartbeats;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Events;
using AppHb.Daemon.Status;
using AppHb.Linux.Processes;
using AppHb.Linux.Sockets;
using AppHb.Protocol;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Clients;

/// <summary>What every connection shares: the daemon's parts it talks to, and its limits.</summary>
internal sealed record ConnectionServices(
    HeartbeatRegistry Registry,
    EventBroadcaster Broadcaster,
    ProcessExitWatcher Exits,
    StatusReporter Status,
    ControlHandler Control,
    ReadDeadlines ReadDeadlines,
    ClientLimits Limits,
    Func<bool> IsShuttingDown,
    LogBudget ViolationLog,
    ILogger Logger,
    Action<ClientConnection> Closed);

/// <summary>Serves one connection. Its first frame decides what it is: a heartbeat client (Register), a one-shot
/// status reader (StatusRequest) or an event watcher (Subscribe). Any protocol violation gets one Error frame naming
/// the problem and closes this connection only; nothing it sends can reach another client's state.
/// <para>What one connection can cost is bounded: its buffer (a request is at most 1 KiB), its time (at most
/// <see cref="FramesPerTurn"/> frames before it yields the socket thread to the others), a partial frame (closed after
/// the read timeout) and a reply its peer does not read (closed after the send timeout).</para></summary>
internal sealed class ClientConnection : IDisposable
{
    private const int InitialBufferSize = 256;
    private const int FramesPerTurn = 64;

    private readonly Socket _socket;
    private readonly ConnectionServices _services;
    private readonly PeerCredentials _peer;
    private readonly bool _restricted;
    private IDisposable? _exitWatch;
    private Role _role;
    private RegisteredClient? _client;
    private bool _replayHistory;
    private uint _subscribeSequence;
    private bool _watching;
    // Read timeout of a partial frame: armed (with a new version) when a turn ends inside a frame, disarmed (version
    // bumped) when the buffer empties. The deadline loop calls ReadTimedOut with the version it armed.
    private int _readVersion;
    private bool _partialArmed;
    private CancellationTokenSource? _readCancel;
    private volatile bool _timedOut;

    /// <param name="restricted">Beyond its uid's connection limit (allowed for root and apphbd's own user only): it may
    /// ask for status and control services, not register or subscribe.</param>
    public ClientConnection(Socket socket, PeerCredentials peer, bool restricted, ConnectionServices services)
    {
        _socket = socket;
        _peer = peer;
        _restricted = restricted;
        _services = services;
    }

    private enum Role
    {
        New,
        Client,
        Unregistered,
        Watcher,
    }

    public PeerCredentials Peer => _peer;

    /// <summary>The connection's service, from <see cref="Start"/> until it is closed.</summary>
    public Task Running { get; private set; } = Task.CompletedTask;

    /// <summary>Serves the connection until it closes; then tells <see cref="ConnectionServices.Closed"/> (no
    /// continuation per connection: the service's own end says so).</summary>
    public void Start(CancellationToken cancellationToken) => Running = RunAsync(cancellationToken);

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var reason = "connection closed";
        // A pending receive pins its buffer for as long as the client is idle, which for a heartbeat client is
        // almost always. Thousands of pinned arrays scattered through the normal heap fragment it; the pinned
        // object heap is made for exactly this.
        var buffer = GC.AllocateUninitializedArray<byte>(InitialBufferSize, pinned: true);
        var filled = 0;
        var framesThisTurn = 0;
        try
        {
            while (true)
            {
                if (framesThisTurn >= FramesPerTurn)
                {
                    // Frames keep coming as fast as they are handled: let the socket thread serve the others (their
                    // beats first of all) before reading more. What stays unread is in the socket, where the
                    // pending-beat check sees it.
                    framesThisTurn = 0;
                    await Task.Yield();
                }

                // No token unless a partial frame is being timed: apphbd's stop ends the receive by shutting the socket
                // down (Close), and a registration on the stopping token per idle connection is memory for nothing.
                var read = await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, _readCancel?.Token ?? CancellationToken.None);
                if (read == 0)
                {
                    break;
                }

                filled += read;
                var offset = 0;
                uint? failing = null;
                try
                {
                    while (FrameReader.TryReadFrame(buffer.AsSpan(offset, filled - offset), out var header, FrameFormat.MaxRequestFrameSize))
                    {
                        failing = header.Sequence;
                        framesThisTurn++;
                        var payloadStart = offset + FrameFormat.HeaderSize;
                        offset += header.FrameLength;
                        var reply = header.Type == FrameType.Control
                            ? await ControlAsync(header, buffer.AsMemory(payloadStart, header.PayloadLength), cancellationToken)
                            : Handle(header, buffer.AsSpan(payloadStart, header.PayloadLength));
                        if (reply is not null)
                        {
                            await SendAsync(reply, cancellationToken);
                        }

                        if (_role == Role.Watcher && _watching is false)
                        {
                            // The broadcaster sends the Ok, then the events: none precedes it, none published after
                            // it is missed.
                            _services.Broadcaster.Add(_socket, _peer.Pid, _replayHistory, FrameWriter.EmptyToArray(FrameType.Ok, _subscribeSequence));
                            _watching = true;
                        }

                        failing = null;
                    }
                }
                catch (ProtocolException e)
                {
                    // Answer the frame that broke the rule, not the last good one; a bad header is at the offset.
                    var sequence = failing ?? FrameReader.PeekSequence(buffer.AsSpan(offset, filled - offset)) ?? 0;
                    if (_services.ViolationLog.TryTake(out var suppressed))
                    {
                        Log.ProtocolViolation(_services.Logger, _peer.Pid, _peer.Uid, sequence, e.Code.ToString(),
                            suppressed > 0 ? $"{e.Message} ({suppressed} more violations not logged)" : e.Message);
                    }

                    reason = $"protocol error: {e.Message}";
                    await TrySendAsync(FrameWriter.ToArray(ErrorReply.Create(e.Code, e.Message), sequence), cancellationToken);
                    return;
                }

                // Keep the unread tail; grow only for a frame that is known (from its header) to need it.
                Buffer.BlockCopy(buffer, offset, buffer, 0, filled - offset);
                filled -= offset;
                if (filled == buffer.Length)
                {
                    var needed = filled >= FrameFormat.HeaderSize && FramePeek(buffer, out var length) ? length : buffer.Length * 2;
                    var larger = GC.AllocateUninitializedArray<byte>(Math.Min(Math.Max(needed, buffer.Length * 2), FrameFormat.MaxRequestFrameSize), pinned: true);
                    Buffer.BlockCopy(buffer, 0, larger, 0, filled);
                    buffer = larger;
                }
                else if (filled == 0 && buffer.Length > InitialBufferSize)
                {
                    // A large frame came and went: give the memory back.
                    buffer = GC.AllocateUninitializedArray<byte>(InitialBufferSize, pinned: true);
                }

                TrackPartialFrame(filled > 0, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (_timedOut)
        {
            reason = $"read timeout: part of a frame waited {_services.Limits.ReadTimeout.TotalSeconds:0.#} s for the rest";
            await TrySendAsync(FrameWriter.ToArray(ErrorReply.Create(ErrorCode.TimedOut,
                $"a frame was not completed within the read timeout of {_services.Limits.ReadTimeout.TotalMilliseconds:0} ms"), 0), CancellationToken.None);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            reason = "apphbd is stopping";
        }
        catch (TimeoutException)
        {
            reason = $"send timeout: a reply waited {_services.Limits.SendTimeout.TotalSeconds:0.#} s for the peer to read";
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            reason = $"connection failed: {e.Message}";
        }
        catch (Exception e)
        {
            Log.ConnectionFailed(_services.Logger, _peer.Pid, e);
            reason = $"internal error: {e.Message}";
        }
        finally
        {
            _partialArmed = false;
            Interlocked.Increment(ref _readVersion);
            _exitWatch?.Dispose();
            if (_client is not null)
            {
                _services.Registry.Disconnect(_client, reason);
            }

            if (_watching)
            {
                _services.Broadcaster.Remove(_socket);
            }

            Dispose();
            _services.Closed(this);
        }
    }

    /// <summary>Tells a connection that apphbd is stopping, then closes it (the server does this to every one left).</summary>
    public void Close(byte[]? lastFrame)
    {
        if (lastFrame is not null && !_watching)
        {
            // Best effort and never blocking: a frame that does not fit the socket's buffer now is not sent. (A
            // watcher's last frame goes through the broadcaster, which owns its socket's writes.)
            _ = SocketPeek.SendNow(_socket, lastFrame);
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Asked by the deadline loop when a read deadline surfaces; true when it closes this connection.</summary>
    public bool ReadTimedOut(int version)
    {
        if (version != Volatile.Read(ref _readVersion) || !_partialArmed || _readCancel is not { } cancel)
        {
            return false;
        }

        _timedOut = true;
        // Not on the deadline loop's thread: cancelling a receive may run the connection's continuation inline.
        ThreadPool.UnsafeQueueUserWorkItem(static c => c.Cancel(), cancel, preferLocal: false);
        return true;
    }

    /// <summary>Whether a beat from this connection's client is waiting in its socket, unread (looked at without
    /// taking it). Asked by the registry, under its lock, before it declares the client warn or hung.</summary>
    public bool HasQueuedBeat()
    {
        Span<byte> queued = stackalloc byte[512];
        var count = SocketPeek.Queued(_socket, queued);
        for (var at = 0; at + FrameFormat.HeaderSize <= count;)
        {
            if ((FrameType)queued[at + 5] == FrameType.Beat)
            {
                return true;
            }

            var length = BinaryPrimitives.ReadUInt32BigEndian(queued[at..]);
            if (length > FrameFormat.MaxRequestFrameSize)
            {
                return false;
            }

            at += FrameFormat.LengthPrefixSize + (int)length;
        }

        return false;
    }

    public void Dispose()
    {
        _socket.Dispose();
        _readCancel?.Dispose();
    }

    private void TrackPartialFrame(bool partial, CancellationToken cancellationToken)
    {
        if (partial && !_partialArmed)
        {
            _readCancel ??= CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _partialArmed = true;
            _services.ReadDeadlines.Arm(this, Interlocked.Increment(ref _readVersion), _services.Limits.ReadTimeout);
        }
        else if (!partial && _partialArmed)
        {
            _partialArmed = false;
            Interlocked.Increment(ref _readVersion);
        }
    }

    private static bool FramePeek(byte[] buffer, out int frameLength)
    {
        try
        {
            FrameReader.TryReadFrame(buffer, out var header, FrameFormat.MaxRequestFrameSize);
            frameLength = header.FrameLength;
            return true;
        }
        catch (ProtocolException)
        {
            frameLength = 0;
            return false;
        }
    }

    private async ValueTask<byte[]?> ControlAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (_role is Role.Client or Role.Watcher)
        {
            throw OutOfOrder(header, "this connection is already " + Describe(_role));
        }

        ControlRequest control;
        try
        {
            control = ControlRequest.Read(payload.Span);
        }
        catch (ProtocolException e) when (e.Code == ErrorCode.InvalidArgument)
        {
            // A well-formed frame with a value out of range: said, and the connection stays open.
            return Error(header, e.Code, e.Message);
        }

        return await HandleControlAsync(control, header.Sequence, cancellationToken);
    }

    /// <summary>Runs a control request while watching for apphbctl to leave: a zero-byte receive completes when the
    /// socket is readable, and nothing to read then means the peer closed (or shut down its sending side).</summary>
    private async Task<byte[]> HandleControlAsync(ControlRequest control, uint sequence, CancellationToken cancellationToken)
    {
        using var left = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var handling = _services.Control.HandleAsync(control, sequence, _peer, left.Token);
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
        catch (ProtocolException e) when (e.Code == ErrorCode.InvalidArgument)
        {
            // A well-formed frame with a value out of range (an empty name): said, and the connection stays open.
            return Error(header, e.Code, e.Message);
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
                _services.Registry.Beat(RequireClient(header));
                return (header.Flags & FrameFlags.AckRequested) != 0 ? FrameWriter.EmptyToArray(FrameType.Ok, header.Sequence) : null;

            case FrameType.Register:
                if (_role != Role.New)
                {
                    throw OutOfOrder(header, "this connection is already " + Describe(_role) + "; one connection registers one client");
                }

                RefuseWhenShuttingDownOrRestricted(header);
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
                    _client = _services.Registry.Register(new ClientIdentity(request.Name, request.Instance, _peer), timing, owner: this);
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
                _services.Registry.Unregister(RequireClient(header));
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

                byte[] status;
                try
                {
                    status = _services.Status.SerializeStatus();
                }
                catch (IOException e)
                {
                    // At the open-file limit, reading /proc can fail: said, not a dropped connection.
                    return Error(header, ErrorCode.Failed, $"StatusRequest: the status could not be read now: {e.Message}");
                }

                var document = new ArrayBufferWriter<byte>();
                FrameWriter.WriteDocument(document, FrameType.Status, header.Sequence, status);
                return document.WrittenSpan.ToArray();

            case FrameType.Subscribe:
                EnsurePayloadEmpty(header);
                if (_role != Role.New)
                {
                    throw OutOfOrder(header, "this connection is already " + Describe(_role));
                }

                RefuseWhenShuttingDownOrRestricted(header);
                _replayHistory = (header.Flags & FrameFlags.ReplayHistory) != 0;
                _subscribeSequence = header.Sequence;
                _role = Role.Watcher;
                return null;

            default:
                throw new ProtocolException(ErrorCode.UnknownType, $"frame type 0x{(byte)header.Type:x2} is unknown");
        }
    }

    /// <summary>New registrations and subscriptions end when apphbd begins to stop (the connection is closed with
    /// ShuttingDown), and a connection beyond its uid's limit may not make them at all.</summary>
    private void RefuseWhenShuttingDownOrRestricted(FrameHeader header)
    {
        if (_services.IsShuttingDown())
        {
            throw new ProtocolException(ErrorCode.ShuttingDown, $"{header.Type}: apphbd is shutting down");
        }

        if (_restricted)
        {
            throw new ProtocolException(ErrorCode.LimitReached,
                $"{header.Type}: uid {_peer.Uid} has its maximum of {_services.Limits.MaxConnectionsPerUid} connections open (clients.max-connections-per-uid); this one may only ask for status and control services");
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
        var registry = _services.Registry;
        try
        {
            _exitWatch = _services.Exits.Watch(pid, () => registry.Disconnect(client, $"process {pid} exited"));
        }
        catch (IOException e)
        {
            // Out of descriptors or over budget: the client is still watched through its socket. Said at the 1st,
            // 10th, 100th... refusal, so a burst of registrations does not flood the journal.
            var refused = _services.Exits.Unwatched;
            if (refused > 0 && Math.Log10(refused) % 1 == 0)
            {
                Log.ExitWatchUnavailable(_services.Logger, refused, e.Message);
            }
        }
    }

    private byte[] ChangeTiming(FrameHeader header, RegisteredClient client, TimeSpan interval, TimeSpan warn)
    {
        try
        {
            _services.Registry.ChangeTiming(client, HeartbeatTiming.Create(interval, warn));
            return FrameWriter.EmptyToArray(FrameType.Ok, header.Sequence);
        }
        catch (ArgumentException e)
        {
            return Error(header, ErrorCode.InvalidArgument, $"{header.Type}: {FirstSentence(e.Message)}");
        }
    }

    private TimeSpan CurrentWarn(RegisteredClient client) => _services.Registry.TimingOf(client).Warn;

    private TimeSpan CurrentInterval(RegisteredClient client) => _services.Registry.TimingOf(client).Interval;

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

    /// <summary>Sends a reply. Only this connection's own loop sends, one reply at a time, so what fits the socket's
    /// buffer goes at once with no lock and no asynchronous send state (most connections never need either); the rest
    /// waits for the peer to read, and a peer that does not read it within the send timeout loses the connection
    /// (<see cref="TimeoutException"/>).</summary>
    private async ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        // 0 also for a closed peer: the asynchronous send below then reports the error itself.
        frame = frame[SocketPeek.SendNow(_socket, frame.Span)..];
        while (!frame.IsEmpty)
        {
            var sending = _socket.SendAsync(frame, SocketFlags.None, cancellationToken);
            var sent = sending.IsCompleted ? sending.Result : await sending.AsTask().WaitAsync(_services.Limits.SendTimeout, cancellationToken);
            frame = frame[sent..];
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
        catch (Exception e) when (e is OperationCanceledException or TimeoutException or SocketException or IOException or ObjectDisposedException)
        {
        }
    }
}
