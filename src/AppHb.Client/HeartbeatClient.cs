using System.Collections.Concurrent;
using AppHb.Client.Internal;
using AppHb.Protocol;

namespace AppHb.Client;

/// <summary>Registers this process with apphbd and sends heartbeats over its Unix socket.
/// <para>One client is one registration. apphbd learns the pid, uid and gid from the kernel, raises <c>warn</c> and
/// <c>hung</c> when beats stop, and <c>died</c> if the connection closes without <see cref="UnregisterAsync"/>.
/// When apphbd restarts, the client reconnects and registers again on its own (<see cref="HeartbeatClientOptions.Reconnect"/>).</para>
/// <para>Thread-safe. Beats are fire-and-forget (12 bytes, no reply, no allocation); other calls wait for the answer.</para>
/// </summary>
public sealed class HeartbeatClient : IAsyncDisposable
{
    private readonly HeartbeatClientOptions _options;
    // Each pending request remembers its connection: when one connection ends, only its own requests fail.
    private readonly ConcurrentDictionary<uint, (FrameConnection Connection, TaskCompletionSource<ReceivedFrame> Reply)> _pending = new();
    private readonly CancellationTokenSource _lifetime = new();
    private readonly Lock _gate = new();
    private readonly byte[] _beatFrame = FrameWriter.EmptyToArray(FrameType.Beat, 0);
    private FrameConnection? _connection;
    private Task? _reconnectTask;
    private Task? _autoBeatTask;
    private uint _sequence;
    private TimeSpan _interval;
    private TimeSpan _warn;
    private bool _wantRegistered;
    private bool _disposed;

    /// <summary>Creates a client; nothing is sent until <see cref="RegisterAsync"/>.</summary>
    public HeartbeatClient(HeartbeatClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Name);
        _options = options;
        _interval = options.Interval;
        _warn = options.WarnTime;
    }

    /// <summary>The current registration, or null while not registered (before registering, or while reconnecting).</summary>
    public HeartbeatRegistration? Registration { get; private set; }

    /// <summary>Raised after the client registered again on a new connection (the daemon restarted).</summary>
    public event EventHandler<HeartbeatRegistration>? Reregistered;

    /// <summary>Raised when the connection to apphbd is lost while registered.</summary>
    public event EventHandler<Exception?>? ConnectionLost;

    /// <summary>Connects and registers. Starts the automatic beat loop if configured.</summary>
    /// <exception cref="DaemonUnavailableException">apphbd cannot be reached.</exception>
    /// <exception cref="AppHbException">apphbd refused the registration (bad timing, name taken, limit).</exception>
    public async Task RegisterAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Registration is not null)
        {
            throw new InvalidOperationException($"client {_options.Name} is already registered");
        }

        _wantRegistered = true;
        try
        {
            await ConnectAndRegisterAsync(cancellationToken);
        }
        catch
        {
            _wantRegistered = false;
            throw;
        }

        if (_options.AutoBeatPeriod is { } period && _autoBeatTask is null)
        {
            _autoBeatTask = AutoBeatAsync(period, _lifetime.Token);
        }
    }

    /// <summary>Sends one heartbeat. While reconnecting after a lost connection the beat is skipped: there is no
    /// daemon to receive it, and the re-registration starts a fresh interval.</summary>
    /// <exception cref="InvalidOperationException">Not registered and not reconnecting.</exception>
    public async ValueTask BeatAsync(CancellationToken cancellationToken = default)
    {
        var connection = _connection;
        if (connection is null || Registration is null)
        {
            if (_wantRegistered && _options.Reconnect)
            {
                return;
            }

            throw new InvalidOperationException($"client {_options.Name} is not registered");
        }

        try
        {
            await connection.SendAsync(_beatFrame, cancellationToken);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            if (!_options.Reconnect)
            {
                throw new DaemonUnavailableException($"lost the connection to apphbd: {e.Message}", e, _options.SocketPath);
            }
        }
    }

    /// <summary>Changes the interval after which the client is hung.</summary>
    public async Task SetIntervalAsync(TimeSpan interval, CancellationToken cancellationToken = default)
    {
        await RequestAsync(new SetIntervalRequest(ToMilliseconds(interval, nameof(interval))), cancellationToken);
        _interval = interval;
    }

    /// <summary>Changes the warn time (zero disables warn events).</summary>
    public async Task SetWarnTimeAsync(TimeSpan warnTime, CancellationToken cancellationToken = default)
    {
        await RequestAsync(new SetWarnRequest(ToMilliseconds(warnTime, nameof(warnTime))), cancellationToken);
        _warn = warnTime;
    }

    /// <summary>Leaves cleanly: apphbd raises <c>unregistered</c>, not <c>died</c>.</summary>
    public async Task UnregisterAsync(CancellationToken cancellationToken = default)
    {
        _wantRegistered = false;
        var connection = _connection ?? throw new InvalidOperationException($"client {_options.Name} is not registered");
        var sequence = NextSequence();
        await SendAndWaitAsync(connection, FrameWriter.EmptyToArray(FrameType.Unregister, sequence), sequence, cancellationToken);
        Registration = null;
        _connection = null;
        await connection.DisposeAsync();
    }

    /// <summary>Stops the beat loop and reconnects, unregisters if still registered (best effort), and closes.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (Registration is not null && _connection is not null)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                await UnregisterAsync(timeout.Token);
            }
            catch (Exception e) when (e is AppHbException or OperationCanceledException or IOException or InvalidOperationException)
            {
                // The daemon is gone or slow; closing the socket is all that is left to do.
            }
        }

        _wantRegistered = false;
        await _lifetime.CancelAsync();
        foreach (var task in new[] { _autoBeatTask, _reconnectTask })
        {
            if (task is not null)
            {
                try
                {
                    await task;
                }
                catch (OperationCanceledException)
                {
                }
            }
        }

        if (_connection is { } connection)
        {
            await connection.DisposeAsync();
        }

        _lifetime.Dispose();
    }

    private async Task ConnectAndRegisterAsync(CancellationToken cancellationToken)
    {
        var connection = await FrameConnection.ConnectAsync(_options.SocketPath, cancellationToken);
        try
        {
            _ = ReadRepliesAsync(connection);
            var sequence = NextSequence();
            var request = new RegisterRequest(_options.Name, _options.Instance, ToMilliseconds(_interval, "Interval"), ToMilliseconds(_warn, "WarnTime"));
            var reply = await SendAndWaitAsync(connection, FrameWriter.ToArray(request, sequence), sequence, cancellationToken);
            var registered = RegisteredReply.Read(reply.Payload);
            lock (_gate)
            {
                _connection = connection;
                Registration = new HeartbeatRegistration(registered.ClientId, registered.Pid, registered.Uid, registered.Gid);
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task RequestAsync<T>(T message, CancellationToken cancellationToken) where T : IMessage<T>
    {
        var connection = _connection ?? throw new InvalidOperationException($"client {_options.Name} is not registered");
        var sequence = NextSequence();
        await SendAndWaitAsync(connection, FrameWriter.ToArray(message, sequence), sequence, cancellationToken);
    }

    private async Task<ReceivedFrame> SendAndWaitAsync(FrameConnection connection, byte[] frame, uint sequence, CancellationToken cancellationToken)
    {
        var reply = new TaskCompletionSource<ReceivedFrame>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[sequence] = (connection, reply);
        // The reader may have seen the connection end before this waiter was there to be told (a refusal is written
        // as the connection is accepted): it says why on the connection, after which it looks at the waiters.
        if (connection.Ended is { } ended)
        {
            reply.TrySetException(ended);
        }
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.RequestTimeout);
            await connection.SendAsync(frame, timeout.Token);
            var received = await reply.Task.WaitAsync(timeout.Token);
            if (received.Header.Type == FrameType.Error)
            {
                var error = ErrorReply.Read(received.Payload);
                throw new AppHbException(error.Code, error.Message);
            }

            return received;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new AppHbException($"apphbd did not answer within {_options.RequestTimeout.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // A connection refused as it was accepted (apphbd stopping, a limit reached) has the daemon's Error frame
            // waiting for the reader, written before the close that broke this send: its reason beats "broken pipe".
            if (await RefusalAsync(reply.Task) is { } refusal)
            {
                throw refusal;
            }

            throw new DaemonUnavailableException($"lost the connection to apphbd: {e.Message}", e, _options.SocketPath);
        }
        finally
        {
            _pending.TryRemove(sequence, out _);
        }
    }

    /// <summary>The daemon's refusal the reader hands a waiter when the connection ends, if it comes within a short
    /// wait (the frame is already in the socket; the wait only lets the reader reach it).</summary>
    private static async Task<AppHbException?> RefusalAsync(Task<ReceivedFrame> reply)
    {
        try
        {
            await reply.WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (AppHbException e) when (e.Code is not null)
        {
            return e;
        }
        catch (Exception e) when (e is AppHbException or TimeoutException)
        {
        }

        return null;
    }

    private async Task ReadRepliesAsync(FrameConnection connection)
    {
        Exception? failure = null;
        ErrorReply? refusal = null;
        try
        {
            while (await connection.ReceiveAsync(_lifetime.Token) is { } frame)
            {
                if (_pending.TryGetValue(frame.Header.Sequence, out var waiter) && ReferenceEquals(waiter.Connection, connection)
                    && _pending.TryRemove(frame.Header.Sequence, out _))
                {
                    waiter.Reply.TrySetResult(frame);
                }
                else if (frame.Header.Type == FrameType.Error)
                {
                    // An error for a fire-and-forget beat, or a refusal as the connection was accepted (sequence 0):
                    // the daemon closes the connection after it.
                    refusal = ErrorReply.Read(frame.Payload);
                    failure = new AppHbException(refusal.Code, refusal.Message);
                }
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ProtocolException
            or OperationCanceledException or ObjectDisposedException)
        {
            failure ??= e;
        }

        // When the daemon said why it closed, that is the answer; otherwise the connection was lost. Said on the
        // connection first, for a waiter that comes after the loop below.
        connection.Ended = refusal is not null
            ? new AppHbException(refusal.Code, refusal.Message)
            : new DaemonUnavailableException("apphbd closed the connection", failure ?? new EndOfStreamException(), _options.SocketPath);
        foreach (var (sequence, waiter) in _pending)
        {
            if (ReferenceEquals(waiter.Connection, connection) && _pending.TryRemove(sequence, out _))
            {
                waiter.Reply.TrySetException(connection.Ended);
            }
        }

        bool reconnect;
        lock (_gate)
        {
            if (!ReferenceEquals(_connection, connection))
            {
                return;
            }

            _connection = null;
            Registration = null;
            reconnect = _wantRegistered && _options.Reconnect && !_lifetime.IsCancellationRequested;
            if (reconnect)
            {
                _reconnectTask = ReconnectAsync(_lifetime.Token);
            }
        }

        ConnectionLost?.Invoke(this, failure);
        await connection.DisposeAsync();
    }

    private async Task ReconnectAsync(CancellationToken cancellationToken)
    {
        var delay = _options.ReconnectDelay;
        while (!cancellationToken.IsCancellationRequested && _wantRegistered)
        {
            try
            {
                await Task.Delay(delay, cancellationToken);
                await ConnectAndRegisterAsync(cancellationToken);
                Reregistered?.Invoke(this, Registration!);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (AppHbException)
            {
                // Daemon not back yet, or it still holds our old registration (conflict) until it notices the close.
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxReconnectDelay.Ticks));
            }
        }
    }

    private async Task AutoBeatAsync(TimeSpan period, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                if (Registration is not null)
                {
                    await BeatAsync(cancellationToken);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private uint NextSequence()
    {
        // Zero is left to fire-and-forget beats, which get no reply to correlate.
        var next = Interlocked.Increment(ref _sequence);
        return next == 0 ? Interlocked.Increment(ref _sequence) : next;
    }

    private static uint ToMilliseconds(TimeSpan value, string name)
    {
        if (value < TimeSpan.Zero || value.TotalMilliseconds > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, value, "must be between zero and 49 days");
        }

        return (uint)value.TotalMilliseconds;
    }
}
