using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Sockets;

/// <summary>A connection accepted from the lobby: its descriptor and the credentials the kernel recorded at connect.</summary>
public readonly record struct LobbyConnection(int Fd, int Pid, uint Uid, uint Gid);

/// <summary>What the owner of a <see cref="ConnectionLobby"/> decides; every call comes from the lobby's thread.</summary>
public interface IConnectionLobbyHost
{
    /// <summary>A new connection. Null holds it in the lobby until it sends something; bytes are a last word sent
    /// before it is closed (a refusal). <paramref name="fromReserve"/>: it was accepted through a descriptor the host
    /// gave back in <see cref="OutOfDescriptors"/>.</summary>
    byte[]? Accepted(LobbyConnection connection, bool fromReserve);

    /// <summary>A held connection sent its first bytes: the host owns <paramref name="socket"/> from here.</summary>
    void Readable(Socket socket, LobbyConnection connection);

    /// <summary>A held connection closed (by its peer, or by <see cref="ConnectionLobby.CloseAllAsync"/>) before it
    /// sent anything: what <see cref="Accepted"/> counted for it ends.</summary>
    void Left(LobbyConnection connection);

    /// <summary>The lobby closed a descriptor (a refusal, a departure): one may be taken back into a reserve.</summary>
    void DescriptorFreed();

    /// <summary>accept failed for want of descriptors: true when the host freed one for the next accept.</summary>
    bool OutOfDescriptors();
}

/// <summary>Accepts on a listening socket and holds every connection that has not sent anything yet as a bare
/// descriptor in one epoll set, on one thread. A connection costs no managed object until it speaks, so a flood of
/// silent connections up to the open-file limit costs the kernel's socket buffers, not the daemon's heap; what speaks
/// is handed over as a <see cref="Socket"/> at once.</summary>
public sealed class ConnectionLobby : IDisposable
{
    private const ulong WakeToken = ulong.MaxValue;
    private const ulong ListenerToken = ulong.MaxValue - 1;
    /// <summary>Accepts per wake-up before the held connections' events are looked at: a connect storm cannot keep
    /// the ones already in from being served.</summary>
    private const int AcceptsPerTurn = 256;
    private readonly Socket _listener;
    private readonly IConnectionLobbyHost _host;
    private readonly Interop.FileDescriptorHandle _epoll;
    private readonly Interop.FileDescriptorHandle _wake;
    private readonly Dictionary<int, LobbyConnection> _held = [];
    private readonly ConcurrentQueue<Action> _posted = new();
    private readonly Thread _thread;
    private volatile bool _stopped;
    private volatile int _count;
    private bool _accepting = true;

    public ConnectionLobby(Socket listener, IConnectionLobbyHost host, string threadName = "apphb-lobby")
    {
        ArgumentNullException.ThrowIfNull(listener);
        _listener = listener;
        _host = host ?? throw new ArgumentNullException(nameof(host));
        var epoll = Interop.EpollCreate1(Interop.EPOLL_CLOEXEC);
        if (epoll < 0)
        {
            throw new IOException($"epoll_create1 failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        _epoll = new Interop.FileDescriptorHandle(epoll);
        var wake = Interop.EventFd(0, Interop.EFD_CLOEXEC | Interop.EFD_NONBLOCK);
        if (wake < 0)
        {
            _epoll.Dispose();
            throw new IOException($"eventfd failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        _wake = new Interop.FileDescriptorHandle(wake);
        // accept4 must return EAGAIN when the backlog is empty, never block the lobby.
        listener.Blocking = false;
        Add(wake, WakeToken, Interop.EPOLLIN);
        Add(ListenerFd, ListenerToken, Interop.EPOLLIN);
        _thread = new Thread(Run) { Name = threadName, IsBackground = true };
        _thread.Start();
    }

    /// <summary>Connections held (accepted, silent so far).</summary>
    public int Count => _count;

    private int ListenerFd => (int)_listener.SafeHandle.DangerousGetHandle();

    /// <summary>Stops accepting, sends <paramref name="lastWord"/> to every held connection and closes them; completes
    /// once done (on the lobby's thread, between events).</summary>
    public unsafe Task CloseAllAsync(byte[] lastWord)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            if (_accepting)
            {
                _accepting = false;
                _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, ListenerFd, null);
            }

            foreach (var connection in _held.Values.ToList())
            {
                _ = SendNow(connection.Fd, lastWord);
                Drop(connection);
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

        _held.Clear();
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

    private unsafe void Post(Action action)
    {
        _posted.Enqueue(action);
        Wake();
    }

    private unsafe void Wake()
    {
        ulong one = 1;
        _ = Interop.Write(_wake.Fd, &one, sizeof(ulong));
    }

    private void Add(int fd, ulong token, uint events) => Interop.EpollAdd(_epoll.Fd, fd, events, token);

    private unsafe void Run()
    {
        const int batch = 256;
        var events = stackalloc byte[batch * 16];
        while (!_stopped)
        {
            var count = Interop.EpollWait(_epoll.Fd, events, batch, -1);
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
                            Stirred((int)token);
                            break;
                    }
                }
#pragma warning disable CA1031 // The lobby is how every client gets in: one failure must not close the door.
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }
        }
    }

    private unsafe void AcceptSome()
    {
        for (var n = 0; n < AcceptsPerTurn; n++)
        {
            var fromReserve = false;
            var fd = Interop.Accept4(ListenerFd, null, null, Interop.SOCK_CLOEXEC);
            if (fd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is Interop.Errno.EMFILE or Interop.Errno.ENFILE or Interop.Errno.ENOBUFS or Interop.Errno.ENOMEM)
                {
                    if (!_host.OutOfDescriptors())
                    {
                        // Nothing to give back: the backlog waits; level-triggered epoll asks again, so sleep a
                        // little rather than spin on it.
                        Thread.Sleep(20);
                        return;
                    }

                    fd = Interop.Accept4(ListenerFd, null, null, Interop.SOCK_CLOEXEC);
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

            Interop.UCred credentials;
            var length = (uint)sizeof(Interop.UCred);
            if (Interop.GetSockOpt(fd, Interop.SOL_SOCKET, Interop.SO_PEERCRED, &credentials, &length) != 0)
            {
                _ = Interop.Close(fd);
                _host.DescriptorFreed();
                continue;
            }

            var connection = new LobbyConnection(fd, credentials.Pid, credentials.Uid, credentials.Gid);
            if (_host.Accepted(connection, fromReserve) is { } refusal)
            {
                _ = SendNow(fd, refusal);
                _ = Interop.Close(fd);
                _host.DescriptorFreed();
                continue;
            }

            try
            {
                Add(fd, (ulong)fd, Interop.EPOLLIN | Interop.EPOLLRDHUP);
            }
            catch (IOException)
            {
                _ = Interop.Close(fd);
                _host.Left(connection);
                _host.DescriptorFreed();
                continue;
            }

            _held[fd] = connection;
            _count = _held.Count;
        }
    }

    /// <summary>A held connection has an event: its first bytes (handed over) or its end (closed here).</summary>
    private unsafe void Stirred(int fd)
    {
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

        _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, fd, null);
        _held.Remove(fd);
        _count = _held.Count;
        Socket socket;
        try
        {
            socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        }
        catch (SocketException)
        {
            _ = Interop.Close(fd);
            _host.Left(connection);
            _host.DescriptorFreed();
            return;
        }

        _host.Readable(socket, connection);
    }

    private unsafe void Drop(LobbyConnection connection)
    {
        _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, connection.Fd, null);
        _held.Remove(connection.Fd);
        _count = _held.Count;
        _ = Interop.Close(connection.Fd);
        _host.Left(connection);
        _host.DescriptorFreed();
    }
}
