using System.Buffers;
using System.Buffers.Binary;
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
    ClientLimits Limits,
    Func<bool> IsShuttingDown,
    LogBudget ViolationLog,
    ILogger Logger,
    Action<ClientConnection> Closed);

/// <summary>Serves one connection, on the <see cref="ConnectionLoop"/>'s thread. Its first frame decides what it is: a
/// heartbeat client (Register), a one-shot status reader (StatusRequest) or an event watcher (Subscribe). Any protocol
/// violation gets one Error frame naming the problem and closes this connection only; nothing it sends can reach
/// another client's state.
/// <para>A beat costs no allocation and no thread hop: the loop reads it and this session hands it to the registry at
/// once. What takes longer (a control request, a status document) runs off the loop while the connection is suspended,
/// its reply sent when it completes. What one connection can cost is bounded by the loop: its bytes per turn, a partial
/// frame (closed after the read timeout), a reply its peer does not read (closed after the send timeout).</para></summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The operation's source is disposed by the operation itself, when it hands its reply back to the loop.")]
internal sealed class ClientConnection : IConnectionSession
{
    private readonly ServedConnection _connection;
    private readonly ConnectionServices _services;
    private readonly PeerCredentials _peer;
    private readonly bool _restricted;
    private IDisposable? _exitWatch;
    private Role _role;
    private RegisteredClient? _client;
    private bool _watching;
    // A control or status request at work off the loop; cancelled when the connection ends first.
    private CancellationTokenSource? _operation;

    /// <param name="restricted">Beyond its uid's connection limit (allowed for root and apphbd's own user only): it may
    /// ask for status and control services, not register or subscribe.</param>
    public ClientConnection(ServedConnection connection, PeerCredentials peer, bool restricted, ConnectionServices services)
    {
        _connection = connection;
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

    /// <summary>An event stream: the broadcaster writes on its socket (its last word at apphbd's stop too).</summary>
    public bool IsWatching => _watching;

    public int Received(ReadOnlySpan<byte> bytes)
    {
        var offset = 0;
        uint? failing = null;
        try
        {
            while (_operation is null && FrameReader.TryReadFrame(bytes[offset..], out var header, FrameFormat.MaxRequestFrameSize))
            {
                failing = header.Sequence;
                var payload = bytes.Slice(offset + FrameFormat.HeaderSize, header.PayloadLength);
                offset += header.FrameLength;
                if (Handle(header, payload) is { } reply)
                {
                    _connection.Send(reply);
                }

                failing = null;
            }
        }
        catch (ProtocolException e)
        {
            // Answer the frame that broke the rule, not the last good one; a bad header is at the offset.
            var sequence = failing ?? FrameReader.PeekSequence(bytes[offset..]) ?? 0;
            if (_services.ViolationLog.TryTake(out var suppressed))
            {
                Log.ProtocolViolation(_services.Logger, _peer.Pid, _peer.Uid, sequence, e.Code.ToString(),
                    suppressed > 0 ? $"{e.Message} ({suppressed} more violations not logged)" : e.Message);
            }

            _connection.Send(FrameWriter.ToArray(ErrorReply.Create(e.Code, e.Message), sequence));
            _connection.Close($"protocol error: {e.Message}");
            return bytes.Length;
        }

        return offset;
    }

    public void ReadTimedOut()
    {
        _connection.Send(FrameWriter.ToArray(ErrorReply.Create(ErrorCode.TimedOut,
            $"a frame was not completed within the read timeout of {_services.Limits.ReadTimeout.TotalMilliseconds:0} ms"), 0));
        _connection.Close($"read timeout: part of a frame waited {_services.Limits.ReadTimeout.TotalSeconds:0.#} s for the rest");
    }

    public void Ended(string reason)
    {
        if (_operation is { } operation)
        {
            // Not inline: cancellation callbacks of the control handler must not run on the loop's thread.
            _ = operation.CancelAsync();
        }

        _exitWatch?.Dispose();
        if (_client is not null)
        {
            _services.Registry.Disconnect(_client, reason);
        }

        if (_watching)
        {
            _services.Broadcaster.Remove(_connection);
        }

        _services.Closed(this);
    }

    /// <summary>Whether a beat from this connection's client is waiting in its socket, unread (looked at without
    /// taking it). Asked by the registry, under its lock, before it declares the client warn or hung.</summary>
    public bool HasQueuedBeat()
    {
        Span<byte> queued = stackalloc byte[512];
        var count = _connection.Peek(queued);
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

    private byte[]? Control(FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_role is Role.Client or Role.Watcher)
        {
            throw OutOfOrder(header, "this connection is already " + Describe(_role));
        }

        ControlRequest control;
        try
        {
            control = ControlRequest.Read(payload);
        }
        catch (ProtocolException e) when (e.Code == ErrorCode.InvalidArgument)
        {
            // A well-formed frame with a value out of range: said, and the connection stays open.
            return Error(header, e.Code, e.Message);
        }

        var sequence = header.Sequence;
        var peer = _peer;
        var handler = _services.Control;
        // A control request may wait for a service to stop: off the loop, and cancelled if apphbctl leaves first.
        StartOperation(token => handler.HandleAsync(control, sequence, peer, token));
        return null;
    }

    private void StartOperation(Func<CancellationToken, Task<byte[]>> work)
    {
        var operation = _operation = new CancellationTokenSource();
        _connection.Suspend();
        _ = RunOperationAsync(work, operation);
    }

    private async Task RunOperationAsync(Func<CancellationToken, Task<byte[]>> work, CancellationTokenSource operation)
    {
        byte[]? reply = null;
        try
        {
            await Task.Yield();
            reply = await work(operation.Token);
        }
        catch (OperationCanceledException) when (operation.IsCancellationRequested)
        {
        }
#pragma warning disable CA1031 // The failure is this request's, and the loop ends the connection for it.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.ConnectionFailed(_services.Logger, _peer.Pid, e);
        }
        finally
        {
            // Back on the loop's thread (through Resume) before the next frame is read.
            _connection.Resume(reply, () =>
            {
                _operation = null;
                operation.Dispose();
            });
        }
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
            case FrameType.Control:
                return Control(header, payload);

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

                StartStatus(header.Sequence);
                return null;

            case FrameType.Subscribe:
                EnsurePayloadEmpty(header);
                if (_role != Role.New)
                {
                    throw OutOfOrder(header, "this connection is already " + Describe(_role));
                }

                RefuseWhenShuttingDownOrRestricted(header);
                _role = Role.Watcher;
                _watching = true;
                // The broadcaster sends the Ok, then the events: none precedes it, none published after it is missed.
                _services.Broadcaster.Add(_connection, _peer.Pid, (header.Flags & FrameFlags.ReplayHistory) != 0,
                    FrameWriter.EmptyToArray(FrameType.Ok, header.Sequence));
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

    /// <summary>The document reads /proc for every service: off the loop, so that no beat waits behind it.</summary>
    /// <remarks>A method of its own, as <see cref="WatchForExit"/> is: a lambda capturing a switch section's locals
    /// would allocate its closure on every frame.</remarks>
    private void StartStatus(uint sequence)
    {
        var reporter = _services.Status;
        StartOperation(_ => Task.FromResult(StatusFrame(reporter, sequence)));
    }

    private static byte[] StatusFrame(StatusReporter reporter, uint sequence)
    {
        byte[] status;
        try
        {
            status = reporter.SerializeStatus();
        }
        catch (IOException e)
        {
            // At the open-file limit, reading /proc can fail: said, not a dropped connection.
            return FrameWriter.ToArray(ErrorReply.Create(ErrorCode.Failed, $"StatusRequest: the status could not be read now: {e.Message}"), sequence);
        }

        var document = new ArrayBufferWriter<byte>();
        FrameWriter.WriteDocument(document, FrameType.Status, sequence, status);
        return document.WrittenSpan.ToArray();
    }
}
