using System.Runtime.InteropServices;

namespace AppHb.Linux.Processes;

/// <summary>Learns the moment a process exits, by pidfd, for any number of processes, from one thread blocked in
/// epoll_wait: no polling and no thread or timer per process. A pid that is already gone is reported at once.</summary>
public sealed class ProcessExitWatcher : IDisposable
{
    private const ulong WakeToken = 0;
    private readonly Interop.FileDescriptorHandle _epoll;
    private readonly Interop.FileDescriptorHandle _wake;
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, ExitWatch> _watches = [];
    private readonly Thread _thread;
    private readonly int _capacity;
    private readonly Action? _onThreadStarted;
    private readonly System.Collections.Concurrent.ConcurrentQueue<Action> _posted = new();
    private ulong _nextToken;
    private long _unwatched;
    private volatile bool _disposed;

    /// <param name="capacity">Most pidfds to hold at once: each costs a descriptor that sockets may need more.</param>
    /// <param name="onThreadStarted">Runs first on the watcher's thread (to give it a realtime policy: the supervisor
    /// respawns services from its callbacks).</param>
    public ProcessExitWatcher(int capacity = int.MaxValue, Action? onThreadStarted = null)
    {
        _capacity = capacity;
        _onThreadStarted = onThreadStarted;
        (_epoll, _wake) = Interop.EpollWithWake();
        Add(_wake.Fd, WakeToken);
        _thread = new Thread(Run) { Name = "apphb-pidfd", IsBackground = true };
        _thread.Start();
    }

    private sealed class ExitWatch(ProcessExitWatcher owner, ulong token, Interop.FileDescriptorHandle pidfd, Action onExit) : IDisposable
    {
        public Interop.FileDescriptorHandle Pidfd { get; } = pidfd;
        public Action OnExit { get; } = onExit;
        public void Dispose() => owner.Remove(token);
    }

    private sealed class NoWatch : IDisposable
    {
        public static readonly NoWatch Instance = new();
        public void Dispose() { }
    }

    /// <summary>Calls <paramref name="onExit"/> once, from the watcher's thread, when <paramref name="pid"/> exits;
    /// at once, on the calling thread, if it has exited already. Dispose the result to stop watching.</summary>
    public IDisposable Watch(int pid, Action onExit)
    {
        ArgumentNullException.ThrowIfNull(onExit);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Count >= _capacity)
        {
            Interlocked.Increment(ref _unwatched);
            throw new IOException($"the exit watcher holds its maximum of {_capacity} pidfds (bounded by the open-file limit)");
        }

        var fd = Interop.PidfdOpen(pid, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Interop.ESRCH)
            {
                onExit();
                return NoWatch.Instance;
            }

            Interlocked.Increment(ref _unwatched);
            throw new IOException($"pidfd_open({pid}) failed: {Interop.Describe(errno)} (errno {errno})");
        }

        var pidfd = new Interop.FileDescriptorHandle(fd);
        lock (_gate)
        {
            var token = ++_nextToken;
            var watch = new ExitWatch(this, token, pidfd, onExit);
            _watches.Add(token, watch);
            Add(fd, token);
            return watch;
        }
    }

    /// <summary>Runs <paramref name="action"/> on the watcher's own thread, between exits: work that must not contend
    /// with a respawn (the sweep for orphans that a SIGCHLD asks for) is serialised with it instead.</summary>
    public unsafe void Post(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        _posted.Enqueue(action);
        ulong one = 1;
        _ = Interop.Write(_wake.Fd, &one, sizeof(ulong));
    }

    /// <summary>Watches refused so far (capacity or descriptors exhausted).</summary>
    public long Unwatched => Interlocked.Read(ref _unwatched);

    /// <summary>Processes being watched.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _watches.Count;
            }
        }
    }

    private void Add(int fd, ulong token) => Interop.EpollAdd(_epoll.Fd, fd, Interop.EPOLLIN, token);

    private unsafe void Remove(ulong token)
    {
        lock (_gate)
        {
            if (_watches.Remove(token, out var watch))
            {
                _ = Interop.EpollCtl(_epoll.Fd, Interop.EPOLL_CTL_DEL, watch.Pidfd.Fd, null);
                watch.Pidfd.Dispose();
            }
        }
    }

    private unsafe void Run()
    {
        const int batch = 64;
        var events = stackalloc byte[batch * 16];
        _onThreadStarted?.Invoke();
        while (!_disposed)
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

            for (var i = 0; i < count; i++)
            {
                var token = Interop.EpollToken(events, i);
                if (token == WakeToken)
                {
                    ulong counter;
                    _ = Interop.Read(_wake.Fd, &counter, sizeof(ulong));
                    while (_posted.TryDequeue(out var posted))
                    {
                        try
                        {
                            posted();
                        }
#pragma warning disable CA1031 // A faulty posted action must not end the watching either.
                        catch (Exception)
#pragma warning restore CA1031
                        {
                        }
                    }

                    continue;
                }

                ExitWatch? exited;
                lock (_gate)
                {
                    _watches.TryGetValue(token, out exited);
                }

                if (exited is not null)
                {
                    try
                    {
                        // The callback first (it respawns), the pidfd's epoll removal and close after: the descriptor
                        // is level-triggered but not polled again before this loop's next wait.
                        exited.OnExit();
                    }
#pragma warning disable CA1031 // One faulty callback must not end the watching of every other process.
                    catch (Exception)
#pragma warning restore CA1031
                    {
                    }
                    finally
                    {
                        exited.Dispose();
                    }
                }
            }
        }
    }

    public unsafe void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ulong one = 1;
        _ = Interop.Write(_wake.Fd, &one, sizeof(ulong));
        _thread.Join();
        lock (_gate)
        {
            foreach (var watch in _watches.Values)
            {
                watch.Pidfd.Dispose();
            }

            _watches.Clear();
        }

        _wake.Dispose();
        _epoll.Dispose();
    }
}
