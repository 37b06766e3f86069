using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Sockets;

/// <summary>An accepted connection: its descriptor and the credentials the kernel recorded at connect.</summary>
public readonly record struct AcceptedConnection(int Fd, int Pid, uint Uid, uint Gid);

/// <summary>What the owner of a <see cref="ConnectionLoop"/> decides; every call comes from the loop's thread.</summary>
public interface IConnectionLoopHost
{
    /// <summary>A new connection. Null holds it until it sends something; bytes are a last word sent before it is
    /// closed (a refusal). <paramref name="fromReserve"/>: it was accepted through a descriptor the host gave back in
    /// <see cref="OutOfDescriptors"/>.</summary>
    byte[]? Accepted(AcceptedConnection connection, bool fromReserve);

    /// <summary>A held connection sent its first bytes: the session that serves it from here.</summary>
    IConnectionSession Speaking(ServedConnection connection);

    /// <summary>A held connection closed (by its peer, or by <see cref="ConnectionLoop.CloseAllAsync"/>) before it
    /// sent anything: what <see cref="Accepted"/> counted for it ends.</summary>
    void Left(AcceptedConnection connection);

    /// <summary>The loop closed a descriptor (a refusal, a departure, an end): one may be taken back into a reserve.</summary>
    void DescriptorFreed();

    /// <summary>accept failed for want of descriptors: true when the host freed one for the next accept.</summary>
    bool OutOfDescriptors();
}

/// <summary>Serves one connection's bytes; every call comes from the loop's thread.</summary>
public interface IConnectionSession
{
    /// <summary>Bytes arrived (with those kept from before in front): returns how many it consumed. What it leaves is a
    /// partial request, kept and offered again with what follows; the read timeout closes a connection that leaves
    /// one waiting too long. A session that <see cref="ServedConnection.Suspend"/>s returns what it consumed so far.</summary>
    int Received(ReadOnlySpan<byte> bytes);

    /// <summary>A partial request waited longer than the read timeout: the session says so and closes.</summary>
    void ReadTimedOut();

    /// <summary>The connection is closed, for <paramref name="reason"/>: called once, whoever closed it.</summary>
    void Ended(string reason);
}

/// <summary>Accepts on a listening socket and serves every connection as a bare descriptor in one epoll set, on one
/// thread. A connection that has not sent anything costs no managed object at all, and one that speaks costs a
/// <see cref="ServedConnection"/> and its session: no runtime Socket, no asynchronous receive state, no buffer while it
/// holds no partial request (the loop reads into one buffer of its own). What one connection may cost is bounded: a
/// turn reads at most <see cref="ReadPerTurn"/> bytes from it, a partial request waits at most the read timeout, a reply
/// its peer does not read at most the send timeout (and the connection is not read meanwhile).</summary>
public sealed class ConnectionLoop : IDisposable
{
    /// <summary>Bytes read from one connection per turn, before the others' events are looked at.</summary>
    public const int ReadPerTurn = 2048;
    private const ulong WakeToken = ulong.MaxValue;
    private const ulong ListenerToken = ulong.MaxValue - 1;
    /// <summary>Accepts per wake-up before the other connections' events are looked at: a connect storm cannot keep
    /// the ones already in from being served.</summary>
    private const int AcceptsPerTurn = 256;
    private readonly Socket _listener;
    private readonly IConnectionLoopHost _host;
    private readonly int _maxPartial;
    private readonly TimeSpan _readTimeout;
    private readonly TimeSpan _sendTimeout;
    private readonly TimeProvider _time;
    private readonly Interop.FileDescriptorHandle _epoll;
    private readonly Interop.FileDescriptorHandle _wake;
    private readonly Dictionary<int, AcceptedConnection> _held = [];
    private readonly Dictionary<int, ServedConnection> _served = [];
    // At most one entry per connection and kind: an entry that surfaces before the connection's current deadline is
    // queued again for it, so a client that keeps starting and finishing frames cannot grow this queue.
    private readonly PriorityQueue<(ServedConnection Connection, bool Send), long> _deadlines = new();
    private readonly ConcurrentQueue<Action> _posted = new();
    private readonly byte[] _input;
    private readonly Thread _thread;
    private volatile bool _stopped;
    private volatile int _heldCount;
    private volatile int _servedCount;
    private bool _accepting = true;
    private long _acceptPausedUntil;

    /// <param name="maxPartial">The longest partial request a session may leave (its largest request less a byte).</param>
    public ConnectionLoop(Socket listener, IConnectionLoopHost host, int maxPartial, TimeSpan readTimeout, TimeSpan sendTimeout,
        TimeProvider? time = null, string threadName = "apphb-clients")
    {
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPartial);
        _listener = listener;
        _host = host ?? throw new ArgumentNullException(nameof(host));
        _maxPartial = maxPartial;
        _readTimeout = readTimeout;
        _sendTimeout = sendTimeout;
        _time = time ?? TimeProvider.System;
        _input = GC.AllocateUninitializedArray<byte>(maxPartial + ReadPerTurn, pinned: true);
        (_epoll, _wake) = Interop.EpollWithWake();
        // accept4 must return EAGAIN when the backlog is empty, never block the loop.
        listener.Blocking = false;
        Interop.EpollAdd(_epoll.Fd, _wake.Fd, Interop.EPOLLIN, WakeToken);
        Interop.EpollAdd(_epoll.Fd, ListenerFd, Interop.EPOLLIN, ListenerToken);
        _thread = new Thread(Run) { Name = threadName, IsBackground = true };
        _thread.Start();
    }

    /// <summary>Connections held (accepted, silent so far).</summary>
    public int HeldCount => _heldCount;

    /// <summary>Connections served (they spoke and have a session).</summary>
    public int ServedCount => _servedCount;

    /// <summary>Connections closed because a partial request outwaited the read timeout.</summary>
    public long ReadTimeouts => Interlocked.Read(ref _readTimeouts);

    private long _readTimeouts;

    private int ListenerFd => (int)_listener.SafeHandle.DangerousGetHandle();

    /// <summary>Stops accepting, sends <paramref name="lastWord"/> to every connection that takes it now and closes
    /// them all (sessions end with "apphbd is stopping"); completes once done, on the loop's thread, between events.</summary>
    public Task CloseAllAsync(byte[] lastWord, Func<IConnectionSession, bool>? sendLastWord = null)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            StopAccepting();
            foreach (var connection in _held.Values.ToList())
            {
                _ = SendNow(connection.Fd, lastWord);
                Drop(connection);
            }

            foreach (var connection in _served.Values.ToList())
            {
                if (connection.Session is null || (sendLastWord?.Invoke(connection.Session) ?? true))
                {
                    _ = connection.TrySend(lastWord);
                }

                End(connection, "apphbd is stopping");
            }

            done.TrySetResult();
        });
        return _stopped ? Task.CompletedTask : done.Task;
    }

    public void Dispose()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        Wake();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join(TimeSpan.FromSeconds(5));
        }

        foreach (var fd in _held.Keys)
        {
            _ = Interop.Close(fd);
        }

        foreach (var connection in _served.Values)
        {
            connection.Handle.Dispose();
        }

        _held.Clear();
        _served.Clear();
        _wake.Dispose();
        _epoll.Dispose();
    }

    /// <summary>send with MSG_DONTWAIT | MSG_NOSIGNAL on a bare descriptor: what fits now, never a wait or SIGPIPE.</summary>
    public static unsafe int SendNow(int fd, ReadOnlySpan<byte> bytes)
    {
        fixed (byte* data = bytes)
        {
            var sent = Interop.Send(fd, data, (nuint)bytes.Length, Interop.MSG_DONTWAIT | Interop.MSG_NOSIGNAL);
            return sent > 0 ? (int)sent : 0;
        }
    }

    /// <summary>Runs <paramref name="action"/> on the loop's thread, between events (any thread may post).</summary>
    public void Post(Action action)
    {
        _posted.Enqueue(action);
        Wake();
    }

    internal bool OnLoopThread => Thread.CurrentThread == _thread;

    /// <summary>A reply from the session (on the loop's thread): what fits goes now; the rest waits for the peer to
    /// read, which it must within the send timeout, and the connection is not read until it has.</summary>
    internal void Send(ServedConnection connection, ReadOnlySpan<byte> frame)
    {
        if (connection.Ended)
        {
            return;
        }

        if (connection.Output is null)
        {
            var sent = connection.TrySend(frame);
            if (sent < 0)
            {
                // The peer is gone; its hang-up ends the connection on the next turn.
                return;
            }

            frame = frame[sent..];
            if (frame.IsEmpty)
            {
                return;
            }
        }

        var pending = connection.Output is { } output ? output[connection.OutputOffset..] : [];
        connection.Output = [.. pending, .. frame];
        connection.OutputOffset = 0;
        if (connection.SendDue == 0)
        {
            connection.SendDue = Due(_sendTimeout);
            Queue(connection, send: true);
        }

        UpdateInterest(connection);
    }

    internal void Suspend(ServedConnection connection)
    {
        connection.Suspended = true;
        UpdateInterest(connection);
    }

    internal void Resume(ServedConnection connection, byte[]? reply, Action? first) => Post(() =>
    {
        first?.Invoke();
        if (connection.Ended)
        {
            return;
        }

        connection.Suspended = false;
        if (reply is not null)
        {
            Send(connection, reply);
        }

        // What arrived behind the request that suspended it is served before anything new is read.
        Deliver(connection, 0);
        UpdateInterest(connection);
    });

    private void Wake()
    {
        unsafe
        {
            ulong one = 1;
            _ = Interop.Write(_wake.Fd, &one, sizeof(ulong));
        }
    }

    private void StopAccepting()
    {
        if (_accepting)
        {
            _accepting = false;
            _acceptPausedUntil = 0;
            unsafe
            {
                _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, ListenerFd, null);
            }
        }
    }

    private unsafe void Run()
    {
        const int batch = 256;
        var events = stackalloc byte[batch * 16];
        while (!_stopped)
        {
            var count = Interop.EpollWait(_epoll.Fd, events, batch, WaitMilliseconds());
            if (count < 0)
            {
                if (Marshal.GetLastPInvokeError() == Interop.Errno.EINTR)
                {
                    continue;
                }

                return;
            }

            for (var i = 0; i < count && !_stopped; i++)
            {
                var token = Interop.EpollToken(events, i);
                try
                {
                    switch (token)
                    {
                        case WakeToken:
                            ulong counter;
                            _ = Interop.Read(_wake.Fd, &counter, sizeof(ulong));
                            while (_posted.TryDequeue(out var posted))
                            {
                                posted();
                            }

                            break;
                        case ListenerToken:
                            if (_accepting)
                            {
                                AcceptSome();
                            }

                            break;
                        default:
                            Stirred((int)token, Interop.EpollEvents(events, i));
                            break;
                    }
                }
#pragma warning disable CA1031 // The loop is how every client gets in and is served: one failure must not stop it.
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }

            try
            {
                ExpireDeadlines();
                ResumeAcceptingWhenDue();
            }
#pragma warning disable CA1031 // As for an event: this thread serves every client, nothing may end it.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }

    private void AcceptSome()
    {
        for (var n = 0; n < AcceptsPerTurn; n++)
        {
            var fromReserve = false;
            var fd = Accept();
            if (fd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is Interop.Errno.EMFILE or Interop.Errno.ENFILE or Interop.Errno.ENOBUFS or Interop.Errno.ENOMEM)
                {
                    if (!_host.OutOfDescriptors())
                    {
                        // Nothing to give back: the backlog waits. Level-triggered epoll would ask again at once, so
                        // the listener leaves the set for a little while; the connections in are served meanwhile.
                        PauseAccepting();
                        return;
                    }

                    fd = Accept();
                    fromReserve = true;
                    if (fd < 0)
                    {
                        _host.DescriptorFreed();
                        return;
                    }
                }
                else
                {
                    // EAGAIN: the backlog is empty. ECONNABORTED and the like: that one is gone; look again later.
                    return;
                }
            }

            if (!TryReadCredentials(fd, out var connection))
            {
                _ = Interop.Close(fd);
                _host.DescriptorFreed();
                continue;
            }

            if (_host.Accepted(connection, fromReserve) is { } refusal)
            {
                _ = SendNow(fd, refusal);
                _ = Interop.Close(fd);
                _host.DescriptorFreed();
                continue;
            }

            try
            {
                Interop.EpollAdd(_epoll.Fd, fd, Interop.EPOLLIN | Interop.EPOLLRDHUP, (ulong)fd);
            }
            catch (IOException)
            {
                _ = Interop.Close(fd);
                _host.Left(connection);
                _host.DescriptorFreed();
                continue;
            }

            _held[fd] = connection;
            _heldCount = _held.Count;
        }
    }

    private void PauseAccepting()
    {
        unsafe
        {
            _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, ListenerFd, null);
        }

        _acceptPausedUntil = Due(TimeSpan.FromMilliseconds(20));
    }

    private void ResumeAcceptingWhenDue()
    {
        if (_acceptPausedUntil != 0 && _time.GetTimestamp() >= _acceptPausedUntil)
        {
            _acceptPausedUntil = 0;
            if (_accepting)
            {
                try
                {
                    Interop.EpollAdd(_epoll.Fd, ListenerFd, Interop.EPOLLIN, ListenerToken);
                }
                catch (IOException)
                {
                    // Not back yet (the listener may be closing): try again a little later.
                    _acceptPausedUntil = Due(TimeSpan.FromMilliseconds(20));
                }
            }
        }
    }

    private unsafe int Accept() => Interop.Accept4(ListenerFd, null, null, Interop.SOCK_CLOEXEC);

    private static unsafe bool TryReadCredentials(int fd, out AcceptedConnection connection)
    {
        Interop.UCred credentials;
        var length = (uint)sizeof(Interop.UCred);
        if (Interop.GetSockOpt(fd, Interop.SOL_SOCKET, Interop.SO_PEERCRED, &credentials, &length) != 0)
        {
            connection = default;
            return false;
        }

        connection = new AcceptedConnection(fd, credentials.Pid, credentials.Uid, credentials.Gid);
        return true;
    }

    /// <summary>A connection has an event: a served one's bytes, room for its reply or its end; a held one's first
    /// bytes (it gets its session) or its end.</summary>
    private unsafe void Stirred(int fd, uint events)
    {
        if (_served.TryGetValue(fd, out var served))
        {
            Serve(served, events);
            return;
        }

        if (!_held.TryGetValue(fd, out var connection))
        {
            return;
        }

        byte first;
        var peeked = Interop.Recv(fd, &first, 1, Interop.MSG_PEEK | Interop.MSG_DONTWAIT);
        if (peeked < 0 && Marshal.GetLastPInvokeError() == Interop.Errno.EAGAIN)
        {
            return;
        }

        if (peeked <= 0)
        {
            Drop(connection);
            return;
        }

        _held.Remove(fd);
        _heldCount = _held.Count;
        served = new ServedConnection(this, connection);
        _served[fd] = served;
        _servedCount = _served.Count;
        served.Session = _host.Speaking(served);
        Serve(served, Interop.EPOLLIN);
    }

    private void Serve(ServedConnection connection, uint events)
    {
        if ((events & Interop.EPOLLOUT) != 0 && connection.Output is not null)
        {
            Flush(connection);
        }

        if (connection.Ended)
        {
            return;
        }

        if (connection.Output is not null || connection.Suspended)
        {
            // Not read in these states; only its end is reported (with a reply pending, a peer that closes cannot
            // read it; with a request at work, the session's work is cancelled).
            if ((events & (Interop.EPOLLHUP | Interop.EPOLLERR)) != 0)
            {
                End(connection, "connection closed");
            }

            return;
        }

        if ((events & (Interop.EPOLLIN | Interop.EPOLLRDHUP | Interop.EPOLLHUP | Interop.EPOLLERR)) != 0)
        {
            ReadSome(connection);
        }
    }

    private unsafe void ReadSome(ServedConnection connection)
    {
        var kept = connection.Partial?.Length ?? 0;
        long read;
        fixed (byte* buffer = &_input[kept])
        {
            read = Interop.Recv(connection.Fd, buffer, ReadPerTurn, Interop.MSG_DONTWAIT);
        }

        if (read < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is Interop.Errno.EAGAIN or Interop.Errno.EINTR)
            {
                return;
            }

            End(connection, $"connection failed: {Interop.Describe(errno)}");
            return;
        }

        if (read == 0)
        {
            End(connection, "connection closed");
            return;
        }

        Deliver(connection, (int)read);
        UpdateInterest(connection);
    }

    /// <summary>Offers the session what is kept plus <paramref name="read"/> new bytes (already in the buffer behind
    /// what is kept), then keeps what it leaves.</summary>
    private void Deliver(ServedConnection connection, int read)
    {
        var kept = connection.Partial?.Length ?? 0;
        if (kept + read == 0 || connection.Ended)
        {
            return;
        }

        connection.Partial?.CopyTo(_input, 0);
        var total = kept + read;
        int consumed;
        try
        {
            consumed = connection.Suspended ? 0 : connection.Session!.Received(_input.AsSpan(0, total));
        }
#pragma warning disable CA1031 // A session's failure ends its own connection, never the loop.
        catch (Exception e)
#pragma warning restore CA1031
        {
            End(connection, $"internal error: {e.Message}");
            return;
        }

        if (connection.CloseReason is { } reason)
        {
            End(connection, reason);
            return;
        }

        var left = total - consumed;
        if (left > _maxPartial && !connection.Suspended)
        {
            End(connection, $"internal error: {left} bytes of a partial request kept");
            return;
        }

        // A partial request keeps its own small copy; a connection with none keeps no buffer at all.
        connection.Partial = left == 0 ? null : _input.AsSpan(consumed, left).ToArray();
        var waiting = left > 0 && !connection.Suspended;
        if (waiting && connection.ReadDue == 0)
        {
            connection.ReadDue = Due(_readTimeout);
            Queue(connection, send: false);
        }
        else if (!waiting)
        {
            connection.ReadDue = 0;
        }
    }

    private void Flush(ServedConnection connection)
    {
        var output = connection.Output!;
        var sent = connection.TrySend(output.AsSpan(connection.OutputOffset));
        if (sent < 0)
        {
            End(connection, "connection failed: the peer closed before reading its reply");
            return;
        }

        connection.OutputOffset += sent;
        if (connection.OutputOffset < output.Length)
        {
            return;
        }

        connection.Output = null;
        connection.OutputOffset = 0;
        connection.SendDue = 0;
        UpdateInterest(connection);
        // What arrived while the reply waited is served now.
        Deliver(connection, 0);
        UpdateInterest(connection);
    }

    /// <summary>What the connection waits for: its bytes normally; room for its reply while one is pending (it is not
    /// read meanwhile); nothing while its session works on a request. Its end (EPOLLHUP, EPOLLERR) is reported always,
    /// so a peer that closes is seen in every state, and one that only shuts down its sending side still gets its reply.</summary>
    private void UpdateInterest(ServedConnection connection)
    {
        if (connection.Ended)
        {
            return;
        }

        var interest = connection.Output is not null ? Interop.EPOLLOUT
            : connection.Suspended ? 0
            : Interop.EPOLLIN | Interop.EPOLLRDHUP;
        if (interest == connection.Interest)
        {
            return;
        }

        try
        {
            Interop.EpollModify(_epoll.Fd, connection.Fd, interest, (ulong)connection.Fd);
            connection.Interest = interest;
        }
        catch (IOException e)
        {
            End(connection, $"internal error: {e.Message}");
        }
    }

    private long Due(TimeSpan timeout) => _time.GetTimestamp() + (long)(timeout.TotalSeconds * _time.TimestampFrequency);

    private void Queue(ServedConnection connection, bool send)
    {
        if (send ? connection.SendQueued : connection.ReadQueued)
        {
            return;
        }

        if (send)
        {
            connection.SendQueued = true;
        }
        else
        {
            connection.ReadQueued = true;
        }

        _deadlines.Enqueue((connection, send), send ? connection.SendDue : connection.ReadDue);
    }

    private int WaitMilliseconds()
    {
        var next = _acceptPausedUntil != 0 ? _acceptPausedUntil : long.MaxValue;
        if (_deadlines.TryPeek(out _, out var due) && due < next)
        {
            next = due;
        }

        if (next == long.MaxValue)
        {
            return -1;
        }

        var ticks = next - _time.GetTimestamp();
        return ticks <= 0 ? 0 : (int)Math.Min(int.MaxValue, (ticks * 1000 / _time.TimestampFrequency) + 1);
    }

    private void ExpireDeadlines()
    {
        var now = _time.GetTimestamp();
        while (_deadlines.TryPeek(out var entry, out var queuedFor) && queuedFor <= now)
        {
            _deadlines.Dequeue();
            var (connection, send) = entry;
            if (send)
            {
                connection.SendQueued = false;
            }
            else
            {
                connection.ReadQueued = false;
            }

            var due = send ? connection.SendDue : connection.ReadDue;
            if (connection.Ended || due == 0)
            {
                continue;
            }

            if (due > now)
            {
                // Disarmed and armed again since it was queued: wait for the current deadline.
                Queue(connection, send);
            }
            else if (send)
            {
                End(connection, $"send timeout: a reply waited {_sendTimeout.TotalSeconds:0.#} s for the peer to read");
            }
            else
            {
                Interlocked.Increment(ref _readTimeouts);
                connection.ReadDue = 0;
                try
                {
                    connection.Session!.ReadTimedOut();
                }
#pragma warning disable CA1031 // A session's failure ends its own connection, never the loop.
                catch (Exception)
#pragma warning restore CA1031
                {
                }

                End(connection, connection.CloseReason ?? $"read timeout: part of a request waited {_readTimeout.TotalSeconds:0.#} s for the rest");
            }
        }
    }

    /// <summary>Closes a served connection and tells its session, once.</summary>
    private void End(ServedConnection connection, string reason)
    {
        if (connection.Ended)
        {
            return;
        }

        connection.Ended = true;
        unsafe
        {
            _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, connection.Fd, null);
        }

        _served.Remove(connection.Fd);
        _servedCount = _served.Count;
        connection.Partial = null;
        connection.Output = null;
        try
        {
            connection.Session?.Ended(reason);
        }
#pragma warning disable CA1031 // A session's failure at its end must not leave its descriptor open or stop the loop.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        finally
        {
            // After the session: it may still look at the socket (a peek from another thread holds the handle, so
            // the descriptor number cannot be reused under it).
            connection.Handle.Dispose();
            _host.DescriptorFreed();
        }
    }

    private void Drop(AcceptedConnection connection)
    {
        unsafe
        {
            _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, connection.Fd, null);
        }

        _held.Remove(connection.Fd);
        _heldCount = _held.Count;
        _ = Interop.Close(connection.Fd);
        _host.Left(connection);
        _host.DescriptorFreed();
    }
}

/// <summary>A connection the <see cref="ConnectionLoop"/> serves. Its session calls <see cref="Send"/>,
/// <see cref="Close"/> and <see cref="Suspend"/> from the loop's thread; <see cref="Resume"/>, <see cref="TrySend"/> and
/// <see cref="Peek"/> from any thread.</summary>
public sealed class ServedConnection
{
    private readonly ConnectionLoop _loop;

    internal ServedConnection(ConnectionLoop loop, AcceptedConnection accepted)
    {
        _loop = loop;
        Accepted = accepted;
        Handle = new Interop.FileDescriptorHandle(accepted.Fd);
    }

    public AcceptedConnection Accepted { get; }

    internal Interop.FileDescriptorHandle Handle { get; }

    internal int Fd => Accepted.Fd;

    internal IConnectionSession? Session { get; set; }

    internal byte[]? Partial { get; set; }

    internal byte[]? Output { get; set; }

    internal int OutputOffset { get; set; }

    internal uint Interest { get; set; } = Interop.EPOLLIN | Interop.EPOLLRDHUP;

    internal bool Suspended { get; set; }

    internal bool Ended { get; set; }

    internal string? CloseReason { get; set; }

    /// <summary>When the partial request kept must be complete (a timestamp; 0: none kept).</summary>
    internal long ReadDue { get; set; }

    internal bool ReadQueued { get; set; }

    /// <summary>When the pending reply must have been taken by the peer (a timestamp; 0: none pending).</summary>
    internal long SendDue { get; set; }

    internal bool SendQueued { get; set; }

    /// <summary>Sends a reply (loop thread): at once if the socket takes it, else as the peer reads.</summary>
    public void Send(ReadOnlySpan<byte> frame) => _loop.Send(this, frame);

    /// <summary>Ends the connection (loop thread) once the session returns, with what it has sent so far.</summary>
    public void Close(string reason) => CloseReason ??= reason;

    /// <summary>Stops reading (loop thread) while the session works on a request elsewhere; a hang-up still ends it.</summary>
    public void Suspend() => _loop.Suspend(this);

    /// <summary>Sends <paramref name="reply"/> and reads on (any thread); nothing when the connection has ended.
    /// <paramref name="first"/> runs on the loop's thread before anything else, ended or not.</summary>
    public void Resume(byte[]? reply, Action? first = null) => _loop.Resume(this, reply, first);

    /// <summary>Writes what the socket takes now, never waiting (any thread): bytes written, 0 when none fit, -1 when the
    /// peer is gone or the connection closed.</summary>
    public unsafe int TrySend(ReadOnlySpan<byte> bytes)
    {
        var added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            fixed (byte* data = bytes)
            {
                var sent = Interop.Send(Fd, data, (nuint)bytes.Length, Interop.MSG_DONTWAIT | Interop.MSG_NOSIGNAL);
                if (sent >= 0)
                {
                    return (int)sent;
                }

                return Marshal.GetLastPInvokeError() is Interop.Errno.EAGAIN or Interop.Errno.EINTR ? 0 : -1;
            }
        }
        catch (ObjectDisposedException)
        {
            return -1;
        }
        finally
        {
            if (added)
            {
                Handle.DangerousRelease();
            }
        }
    }

    /// <summary>Copies up to <paramref name="destination"/>'s length of the bytes queued in the socket, unread (any
    /// thread); 0 when none, or when the connection is closed.</summary>
    public unsafe int Peek(Span<byte> destination)
    {
        var added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            fixed (byte* bytes = destination)
            {
                var read = Interop.Recv(Fd, bytes, (nuint)destination.Length, Interop.MSG_PEEK | Interop.MSG_DONTWAIT);
                return read > 0 ? (int)read : 0;
            }
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added)
            {
                Handle.DangerousRelease();
            }
        }
    }
}
