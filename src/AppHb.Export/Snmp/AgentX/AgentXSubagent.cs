using System.Buffers;
using System.Net.Sockets;
using System.Threading.Channels;

namespace AppHb.Export.Snmp.AgentX;

/// <summary>How the subagent presents itself to the master agent.</summary>
/// <param name="Subtree">The MIB subtree registered and served.</param>
/// <param name="Timeout">Seconds the master waits for an answer (0: its default, 1 s in net-snmp).</param>
/// <param name="Priority">Registration priority: lower wins when two subagents register the same subtree.</param>
/// <param name="PingInterval">How often an idle session is pinged, so a master that hangs is noticed.</param>
/// <param name="SpinAfterAnswer">How long the reader polls for the next request after answering one before it blocks
/// (zero: never), see <see cref="AgentXInbox"/>.</param>
public sealed record AgentXSubagentOptions(
    ObjectIdentifier Subtree,
    string Description,
    byte Timeout = 0,
    byte Priority = 127,
    TimeSpan? PingInterval = null,
    TimeSpan? ResponseTimeout = null,
    TimeSpan? ReconnectMin = null,
    TimeSpan? ReconnectMax = null,
    int NotificationQueue = 1000,
    TimeSpan? SpinAfterAnswer = null);

/// <summary>What happened to the session, for the daemon's log.</summary>
public enum AgentXSessionChange
{
    /// <summary>Open and Register succeeded: snmpd now routes the subtree here.</summary>
    Registered,

    /// <summary>The session ended (snmpd stopped or restarted, the socket closed, a ping went unanswered).</summary>
    Lost,

    /// <summary>A connection attempt failed; the subagent tries again with backoff.</summary>
    ConnectFailed,

    /// <summary>The master refused the Open or the Register.</summary>
    Refused,

    /// <summary>One PDU from the master did not parse; it was answered with parseError and the session goes on.</summary>
    MalformedRequest,

    /// <summary>The master answered a notification with an error.</summary>
    NotificationRefused,
}

/// <summary>An AgentX subagent (RFC 2741) of the system's snmpd: opens a session, registers one subtree, answers Get,
/// GetNext and GetBulk from the current <see cref="ObjectStore"/>, sends notifications, and reconnects with backoff
/// whenever the master goes away. It knows nothing of SNMP versions, communities or users: snmpd keeps those.</summary>
public sealed class AgentXSubagent
{
    private readonly AgentXEndpoint _endpoint;
    private readonly AgentXSubagentOptions _options;
    private readonly Func<ObjectStore> _store;
    private readonly Action<AgentXSessionChange, string> _changed;
    private readonly TimeProvider _time;
    private readonly Channel<IReadOnlyList<Variable>> _notifications;
    private readonly Lock _pendingLock = new();
    private readonly Dictionary<uint, TaskCompletionSource<ResponsePdu>> _pending = [];
    private readonly Lock _sendLock = new();
    private Socket? _socket;
    private uint _sessionId;
    private uint _packetId;
    private long _requests;
    private long _notificationsSent;
    private long _notificationsDropped;
    private long _registrations;
    private bool _registered;

    public AgentXSubagent(AgentXEndpoint endpoint, AgentXSubagentOptions options, Func<ObjectStore> store, Action<AgentXSessionChange, string> changed, TimeProvider time)
    {
        _endpoint = endpoint ?? throw new ArgumentNullException(nameof(endpoint));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _changed = changed ?? throw new ArgumentNullException(nameof(changed));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        // Oldest first out when snmpd is away for long: the newest notifications say most about the node's state now.
        _notifications = Channel.CreateBounded<IReadOnlyList<Variable>>(
            new BoundedChannelOptions(options.NotificationQueue) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _notificationsDropped));
    }

    public bool IsRegistered
    {
        get => Volatile.Read(ref _registered);
        private set => Volatile.Write(ref _registered, value);
    }

    public long Requests => Interlocked.Read(ref _requests);

    public long Registrations => Interlocked.Read(ref _registrations);

    public long NotificationsSent => Interlocked.Read(ref _notificationsSent);

    public long NotificationsDropped => Interlocked.Read(ref _notificationsDropped);

    /// <summary>Chosen by measurement on two cores under load (docs/benchmarks.md): 20, 50, 100, 200 and 1,000 µs were
    /// tried; 200 µs gave the steadiest walks, 1 ms was slower (the spinner competes with snmpd for the cores).</summary>
    public static TimeSpan DefaultSpinAfterAnswer { get; } = TimeSpan.FromMicroseconds(200);

    private TimeSpan PingInterval => _options.PingInterval ?? TimeSpan.FromSeconds(15);

    private TimeSpan ResponseTimeout => _options.ResponseTimeout ?? TimeSpan.FromSeconds(5);

    /// <summary>Queues a notification: snmpTrapOID.0 and the objects (sysUpTime.0 is added by snmpd). Kept while snmpd
    /// is away and sent when the session is back; only a full queue drops, the oldest first.</summary>
    public void Notify(ObjectIdentifier trapOid, IReadOnlyList<Variable> objects)
    {
        ArgumentNullException.ThrowIfNull(trapOid);
        ArgumentNullException.ThrowIfNull(objects);
        var variables = new List<Variable>(objects.Count + 1) { new(SnmpTrapOid, trapOid) };
        variables.AddRange(objects);
        _notifications.Writer.TryWrite(variables);
    }

    /// <summary>snmpTrapOID.0 (SNMPv2-MIB).</summary>
    public static ObjectIdentifier SnmpTrapOid { get; } = ObjectIdentifier.Parse("1.3.6.1.6.3.1.1.4.1.0");

    /// <summary>Connects, serves and reconnects until cancelled; closes the session with reason shutdown at the end.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = _options.ReconnectMin ?? TimeSpan.FromSeconds(1);
        var maxBackoff = _options.ReconnectMax ?? TimeSpan.FromSeconds(10);
        var lastFailure = string.Empty;

        // Once per distinct reason: a node without snmpd would otherwise log every few seconds forever.
        void Failed(AgentXSessionChange change, string failure)
        {
            if (failure != lastFailure)
            {
                _changed(change, failure.Contains(_endpoint.Text, StringComparison.Ordinal) ? failure : $"{_endpoint}: {failure}");
            }

            lastFailure = failure;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            // No snmpd (the usual case on a node that does not use SNMP): wait for its socket without a connect that
            // throws every few seconds; the exception machinery alone cost apphbd 2 MB of resident memory (measured).
            if (MissingSocket() is { } missing)
            {
                Failed(AgentXSessionChange.ConnectFailed, missing);
                await Task.Delay(backoff, _time, cancellationToken).ConfigureAwait(false);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, maxBackoff.Ticks));
                continue;
            }

            using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var socket = _endpoint.CreateSocket();
            try
            {
                await ConnectAsync(socket, cancellationToken).ConfigureAwait(false);
                _socket = socket;
                var reader = Observed(Serve(socket));
                await OpenAndRegisterAsync(session.Token).ConfigureAwait(false);
                backoff = _options.ReconnectMin ?? TimeSpan.FromSeconds(1);
                lastFailure = string.Empty;
                var sender = Observed(SendNotificationsAsync(session.Token));
                var finished = await Task.WhenAny(reader, sender).ConfigureAwait(false);
                await finished.ConfigureAwait(false);
                throw new IOException("the master agent closed the session");
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                Close(socket);
                return;
            }
#pragma warning disable CA1031 // SNMP is a window on the node, never a way to stop it: any failure ends the session only.
            catch (Exception e)
#pragma warning restore CA1031
            {
                var failure = e is SocketException && MissingSocket() is { } gone
                    ? gone
                    : e is SocketException or IOException or AgentXParseException or TimeoutException or AgentXRefusedException or OperationCanceledException
                        ? e.Message
                        : $"{e.GetType().Name}: {e.Message}";
                if (IsRegistered)
                {
                    _changed(AgentXSessionChange.Lost, $"session with {_endpoint} lost: {failure}");
                    lastFailure = failure;
                }
                else
                {
                    Failed(e is AgentXRefusedException ? AgentXSessionChange.Refused : AgentXSessionChange.ConnectFailed, failure);
                }
            }
            finally
            {
                IsRegistered = false;
                _socket = null;
                await session.CancelAsync().ConfigureAwait(false);
                try
                {
                    // Wakes the reader thread out of recv(2) before the descriptor goes.
                    socket.Shutdown(SocketShutdown.Both);
                }
                catch (SocketException)
                {
                    // Not connected (the connect failed): nothing to wake.
                }

                socket.Dispose();
                FailPending();
            }

            await Task.Delay(backoff, _time, cancellationToken).ConfigureAwait(false);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, maxBackoff.Ticks));
        }
    }

    /// <summary>Connects with a blocking connect(2) on a thread of its own rather than Socket.ConnectAsync: a socket
    /// that ran one async operation stays registered with .NET's epoll thread, and then every PDU in either direction
    /// wakes that thread as well as the reader (measured: snmpd's CPU per walked varbind went from 20 µs to 13 µs
    /// without it, the walk from 310 ms to 230 ms). A master that never answers the connect is given up on after the
    /// response timeout; the blocked thread ends when the socket is disposed or the kernel gives up.</summary>
    private async Task ConnectAsync(Socket socket, CancellationToken cancellationToken)
    {
        var connect = Observed(Task.Factory.StartNew(() => socket.Connect(_endpoint.Address), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
        try
        {
            await connect.WaitAsync(ResponseTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no connection to {_endpoint} within {ResponseTimeout.TotalSeconds:0.#} s");
        }
    }

    /// <summary>Why connecting cannot work yet when the master's Unix socket does not exist; null otherwise.</summary>
    private string? MissingSocket() => _endpoint.Address is UnixDomainSocketEndPoint unix && !File.Exists(unix.ToString())
        ? $"no socket at {unix}; is snmpd running with \"master agentx\"?"
        : null;

    /// <summary>The session's loops end with an exception when it is torn down; the first one is awaited, the other
    /// is only observed.</summary>
    private static Task Observed(Task task)
    {
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return task;
    }

    private async Task OpenAndRegisterAsync(CancellationToken cancellationToken)
    {
        _sessionId = 0;
        var opened = await RequestAsync(new OpenPdu(_options.Timeout, ObjectIdentifier.Null, _options.Description), cancellationToken).ConfigureAwait(false);
        if (opened.Error != AgentXError.NoError)
        {
            throw new AgentXRefusedException($"the master refused the Open: {opened.Error}");
        }

        _sessionId = opened.SessionId;
        var registered = await RequestAsync(new RegisterPdu(_options.Timeout, _options.Priority, _options.Subtree), cancellationToken).ConfigureAwait(false);
        if (registered.Error != AgentXError.NoError)
        {
            throw new AgentXRefusedException($"the master refused to register {_options.Subtree}: {registered.Error}");
        }

        IsRegistered = true;
        Interlocked.Increment(ref _registrations);
        _changed(AgentXSessionChange.Registered, $"registered {_options.Subtree} with the master agent at {_endpoint} (session {_sessionId})");
    }

    /// <summary>Reads every PDU of the session on a thread of its own, blocking in recv(2): answers requests and
    /// completes our pending requests with their responses. The task ends (with the reason) when the session does.
    /// <para>A thread, not the socket's async completions: snmpd turns every GetBulk into one AgentX GetNext per
    /// varbind and repetition (net-snmp's bulk_to_next), so a walk of a thousand clients is thousands of round
    /// trips, and each hop from the epoll thread to a thread-pool worker was most of a round trip's time
    /// (docs/benchmarks.md).</para></summary>
    private Task Serve(Socket socket)
    {
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                ServePdus(socket);
            }
#pragma warning disable CA1031 // A thread's last frame: whatever ends the session must not end apphbd with it.
            catch (Exception e)
#pragma warning restore CA1031
            {
                ended.TrySetException(e is ObjectDisposedException ? new IOException("the session was closed", e) : e);
            }
            finally
            {
                // Our own requests (the Open, a notification) wait for answers this loop will no longer read.
                FailPending();
                ended.TrySetException(new IOException("the master agent closed the session"));
            }
        })
        {
            IsBackground = true,
            Name = "agentx",
        };
        thread.Start();
        return ended.Task;
    }

    private void ServePdus(Socket socket)
    {
        var inbox = new AgentXInbox(_options.SpinAfterAnswer ?? DefaultSpinAfterAnswer);
        var answer = new ArrayBufferWriter<byte>(4096);
        var answered = false;
        while (true)
        {
            var parsed = inbox.ReceiveNext(socket, answered, out var payload);
            answered = false;
            AgentXPdu pdu;
            try
            {
                pdu = AgentXReader.ReadPdu(parsed, payload);
            }
            catch (AgentXParseException e)
            {
                // The header framed it, so the session survives one bad PDU: answer parseError (RFC 2741 section 7.1.4.1).
                _changed(AgentXSessionChange.MalformedRequest, $"{_endpoint}: {e.Message}");
                if (parsed.Type != AgentXPduType.Response)
                {
                    Send(socket, new ResponsePdu(0, AgentXError.ParseError, 0, [])
                    {
                        SessionId = parsed.SessionId, TransactionId = parsed.TransactionId, PacketId = parsed.PacketId,
                    }, answer, parsed.NetworkByteOrder);
                }

                continue;
            }

            switch (pdu)
            {
                case ResponsePdu response:
                    Complete(response);
                    break;
                case ClosePdu close:
                    throw new IOException($"the master agent closed the session ({close.Reason})");
                default:
                    Interlocked.Increment(ref _requests);
                    if (AgentXResponder.Answer(pdu, _store()) is { } reply)
                    {
                        Send(socket, reply, answer, parsed.NetworkByteOrder);
                        answered = true;
                    }

                    break;
            }
        }
    }

    private async Task SendNotificationsAsync(CancellationToken cancellationToken)
    {
        var reader = _notifications.Reader;
        while (true)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            idle.CancelAfter(PingInterval);
            bool ready;
            try
            {
                ready = await reader.WaitToReadAsync(idle.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                var pong = await RequestAsync(new VariablesPdu(AgentXPduType.Ping, []), cancellationToken).ConfigureAwait(false);
                if (pong.Error != AgentXError.NoError)
                {
                    throw new IOException($"the master agent answered a ping with {pong.Error}");
                }

                continue;
            }

            if (!ready || !reader.TryPeek(out var variables))
            {
                continue;
            }

            // Removed from the queue only once snmpd has it: a session lost in between sends it again on the next one.
            var response = await RequestAsync(new VariablesPdu(AgentXPduType.Notify, variables), cancellationToken).ConfigureAwait(false);
            reader.TryRead(out _);
            if (response.Error == AgentXError.NoError)
            {
                Interlocked.Increment(ref _notificationsSent);
            }
            else
            {
                _changed(AgentXSessionChange.NotificationRefused, $"{_endpoint}: the master refused a notification ({variables[0].Data}): {response.Error}");
            }
        }
    }

    private async Task<ResponsePdu> RequestAsync(AgentXPdu request, CancellationToken cancellationToken)
    {
        var packetId = Interlocked.Increment(ref _packetId);
        var completion = new TaskCompletionSource<ResponsePdu>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_pendingLock)
        {
            _pending[packetId] = completion;
        }

        try
        {
            var pdu = request with { SessionId = _sessionId, TransactionId = packetId, PacketId = packetId };
            Send(_socket ?? throw new IOException("not connected"), pdu, new ArrayBufferWriter<byte>(256), networkByteOrder: true);
            return await completion.Task.WaitAsync(ResponseTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no answer to our {request.Type}-PDU within {ResponseTimeout.TotalSeconds:0.#} s");
        }
        finally
        {
            lock (_pendingLock)
            {
                _pending.Remove(packetId);
            }
        }
    }

    private void Complete(ResponsePdu response)
    {
        TaskCompletionSource<ResponsePdu>? waiting;
        lock (_pendingLock)
        {
            _pending.TryGetValue(response.PacketId, out waiting);
        }

        waiting?.TrySetResult(response);
    }

    private void FailPending()
    {
        lock (_pendingLock)
        {
            foreach (var waiting in _pending.Values)
            {
                waiting.TrySetException(new IOException("the session ended"));
            }

            _pending.Clear();
        }
    }

    /// <summary>Writes one PDU whole; the lock keeps answers and our own requests from interleaving. A local socket
    /// takes a PDU at once, so the blocking send never waits on the network.</summary>
    private void Send(Socket socket, AgentXPdu pdu, ArrayBufferWriter<byte> buffer, bool networkByteOrder)
    {
        lock (_sendLock)
        {
            buffer.ResetWrittenCount();
            AgentXWriter.Encode(pdu, buffer, networkByteOrder);
            var bytes = buffer.WrittenSpan;
            while (!bytes.IsEmpty)
            {
                bytes = bytes[socket.Send(bytes, SocketFlags.None)..];
            }
        }
    }

    private void Close(Socket socket)
    {
        if (!IsRegistered)
        {
            return;
        }

        try
        {
            Send(socket, new ClosePdu(AgentXCloseReason.Shutdown) { SessionId = _sessionId }, new ArrayBufferWriter<byte>(32), true);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // Closing anyway: snmpd drops the registration when the socket goes.
        }
    }
}

/// <summary>The master answered Open or Register with an error.</summary>
public sealed class AgentXRefusedException : Exception
{
    public AgentXRefusedException()
    {
    }

    public AgentXRefusedException(string message)
        : base(message)
    {
    }

    public AgentXRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
