using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace AppHb.Linux.Processes;

/// <summary>A started child: its pid (also its process group and session id) and, for captured output, the
/// daemon's end of the output socket.</summary>
public sealed class SpawnedChild(int pid, Socket? output)
{
    public int Pid { get; } = pid;

    public Socket? Output { get; } = output;
}

/// <summary>Every process the daemon started or adopted: spawned, watched and reaped in one place.
/// <para>Exits are learnt by pidfd (<see cref="ProcessExitWatcher"/>) the moment they happen, and the status is then
/// collected for exactly that pid with waitid(P_PID). As a child subreaper the daemon also inherits the orphans of
/// services that double-fork; SIGCHLD (and every tracked exit) sweeps those with waitid(P_ALL, WNOWAIT), reaping
/// untracked zombies only and stopping at a tracked one, so no status the supervisor needs is ever stolen.</para>
/// <para>Spawning and tracking happen under one lock that the sweep also takes: a child that dies before it is
/// tracked cannot be mistaken for an orphan.</para></summary>
public sealed class ChildProcessTable : IDisposable
{
    // argv and envp encoded once per request (a service keeps its request across respawns), freed with it.
    private readonly ConditionalWeakTable<SpawnRequest, NativeStrings> _encoded = new();
    private readonly ProcessExitWatcher _exits;
    private readonly Lock _gate = new();
    private readonly Dictionary<int, IDisposable> _tracked = [];
    private readonly PosixSignalRegistration? _sigchld;
    private long _orphansReaped;
    private int _sweepPosted;
    private bool _disposed;

    /// <param name="becomeSubreaper">prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants become our children.</param>
    public ChildProcessTable(ProcessExitWatcher exits, bool becomeSubreaper)
    {
        ArgumentNullException.ThrowIfNull(exits);
        _exits = exits;
        if (becomeSubreaper)
        {
            IsSubreaper = Interop.Prctl(Interop.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
        }

        // SIGCHLD comes with every child's exit, tracked or not. The sweep for orphans runs on the exit watcher's
        // thread, after whatever respawn it is doing, not on the runtime's signal thread, where it took this table's
        // lock against the respawn (measured: about 50 us of every respawn's latency).
        _sigchld = PosixSignalRegistration.Create(PosixSignal.SIGCHLD, context =>
        {
            context.Cancel = true;
            if (Interlocked.Exchange(ref _sweepPosted, 1) == 0)
            {
                _exits.Post(() =>
                {
                    Volatile.Write(ref _sweepPosted, 0);
                    ReapOrphans();
                });
            }
        });
    }

    /// <summary>Whether the kernel accepted us as child subreaper.</summary>
    public bool IsSubreaper { get; }

    /// <summary>Orphaned descendants reaped so far.</summary>
    public long OrphansReaped => Interlocked.Read(ref _orphansReaped);

    /// <summary>Processes tracked now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _tracked.Count;
            }
        }
    }

    /// <summary>Starts a child; <paramref name="onExit"/> runs once, on the exit watcher's thread, when it ends.</summary>
    /// <exception cref="IOException">The spawn failed (the message names the executable and the errno).</exception>
    public SpawnedChild Spawn(SpawnRequest request, Action<ChildExit> onExit)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(onExit);
        Interop.FileDescriptorHandle? parentEnd = null;
        SafeHandle? childEnd = null;
        SafeHandle? file = null;
        try
        {
            switch (request.Output)
            {
                case ChildOutput.Capture:
                    (parentEnd, childEnd) = CreateOutputPair();
                    break;
                case ChildOutput.File:
                    file = File.OpenHandle(request.OutputFile ?? throw new ArgumentException("OutputFile is required for ChildOutput.File", nameof(request)),
                        FileMode.Append, FileAccess.Write, FileShare.ReadWrite, FileOptions.None);
                    break;
            }

            int pid;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                pid = SpawnLocked(request, _encoded.GetValue(request, static r => new NativeStrings(r)), childEnd ?? file);
                Track(pid, onExit);
            }

            // Only now the daemon's end becomes a Socket (about ten syscalls in the runtime): the respawn does not wait
            // for them.
            return new SpawnedChild(pid, parentEnd is null ? null : OutputSocket(parentEnd));
        }
        catch
        {
            parentEnd?.Dispose();
            throw;
        }
        finally
        {
            childEnd?.Dispose();
            file?.Dispose();
        }
    }

    /// <summary>Watches a process the daemon did not start (found through a pidfile). If it is our child after all
    /// (a double-forking service reparented to us), its status is collected too.</summary>
    /// <returns>False if the process no longer exists.</returns>
    public bool Adopt(int pid, Action<ChildExit> onExit)
    {
        ArgumentNullException.ThrowIfNull(onExit);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_tracked.ContainsKey(pid))
            {
                throw new InvalidOperationException($"pid {pid} is already tracked");
            }

            if (Interop.Kill(pid, 0) != 0 && Marshal.GetLastPInvokeError() == Interop.ESRCH)
            {
                return false;
            }

            Track(pid, onExit);
            return true;
        }
    }

    /// <summary>Sends a signal to a process, or with <paramref name="group"/> to its whole process group.</summary>
    /// <returns>False if nothing was left to signal.</returns>
    public static bool Signal(int pid, int signal, bool group)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pid, 2);
        return Interop.Kill(group ? -pid : pid, signal) == 0;
    }

    /// <summary>Reaps zombies that are not tracked (orphans inherited as subreaper), stopping at the first tracked
    /// one: its pidfd path reaps it and sweeps again.</summary>
    public unsafe void ReapOrphans()
    {
        var info = stackalloc byte[Interop.SigInfoSize];
        lock (_gate)
        {
            while (true)
            {
                new Span<byte>(info, Interop.SigInfoSize).Clear();
                if (Interop.WaitId(Interop.P_ALL, 0, info, Interop.WEXITED | Interop.WNOHANG | Interop.WNOWAIT) != 0)
                {
                    return;
                }

                var pid = *(int*)(info + Interop.SigInfoPidOffset);
                if (pid == 0 || _tracked.ContainsKey(pid))
                {
                    return;
                }

                if (Interop.WaitId(Interop.P_PID, pid, info, Interop.WEXITED | Interop.WNOHANG) == 0)
                {
                    Interlocked.Increment(ref _orphansReaped);
                }
            }
        }
    }

    private void Track(int pid, Action<ChildExit> onExit)
    {
        // Registered before the watch: a child already dead makes Watch call back at once, on this thread.
        _tracked[pid] = NoWatch.Instance;
        var watch = _exits.Watch(pid, () => Exited(pid, onExit));
        if (_tracked.ContainsKey(pid))
        {
            _tracked[pid] = watch;
        }
    }

    private unsafe void Exited(int pid, Action<ChildExit> onExit)
    {
        var info = stackalloc byte[Interop.SigInfoSize];
        new Span<byte>(info, Interop.SigInfoSize).Clear();
        ChildExit exit;
        lock (_gate)
        {
            _tracked.Remove(pid);
            if (Interop.WaitId(Interop.P_PID, pid, info, Interop.WEXITED | Interop.WNOHANG) == 0 && *(int*)(info + Interop.SigInfoPidOffset) == pid)
            {
                var code = *(int*)(info + Interop.SigInfoCodeOffset);
                var status = *(int*)(info + Interop.SigInfoStatusOffset);
                exit = code == Interop.CLD_EXITED ? new ChildExit(pid, status, null) : new ChildExit(pid, null, status);
            }
            else
            {
                exit = new ChildExit(pid, null, null);
            }
        }

        onExit(exit);
        ReapOrphans();
    }

    private static Socket OutputSocket(Interop.FileDescriptorHandle parentEnd)
    {
        var fd = parentEnd.DangerousGetHandle();
        parentEnd.SetHandleAsInvalid();
        var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        socket.Shutdown(SocketShutdown.Send);
        return socket;
    }

    private static (Interop.FileDescriptorHandle Parent, SafeHandle Child) CreateOutputPair()
    {
        // A stream socket, not a pipe, as systemd gives services for journald: the daemon's end is a real Socket, read
        // by epoll like every other, where an anonymous pipe would tie up a thread-pool thread per service.
        Span<int> fds = stackalloc int[2];
        unsafe
        {
            fixed (int* p = fds)
            {
                if (Interop.SocketPair(Interop.AF_UNIX, Interop.SOCK_STREAM | Interop.SOCK_CLOEXEC, 0, p) != 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    throw new IOException($"socketpair for child output failed: {Interop.Describe(errno)} (errno {errno})");
                }
            }
        }

        return (new Interop.FileDescriptorHandle(fds[0]), new Interop.FileDescriptorHandle(fds[1]));
    }

    private static unsafe int SpawnLocked(SpawnRequest request, NativeStrings strings, SafeHandle? output)
    {
        var attr = stackalloc byte[Interop.SpawnAttrSize];
        var actions = stackalloc byte[Interop.SpawnFileActionsSize];
        var sigset = stackalloc byte[Interop.SigSetSize];
        var addedRef = false;
        try
        {
            Check(Interop.PosixSpawnAttrInit(attr), "posix_spawnattr_init");
            Check(Interop.PosixSpawnFileActionsInit(actions), "posix_spawn_file_actions_init");
            // The runtime ignores SIGPIPE and blocks some signals; a service must start as if from a clean exec.
            Check(Interop.PosixSpawnAttrSetFlags(attr, Interop.POSIX_SPAWN_SETSID | Interop.POSIX_SPAWN_SETSIGMASK | Interop.POSIX_SPAWN_SETSIGDEF), "setflags");
            _ = Interop.SigEmptySet(sigset);
            Check(Interop.PosixSpawnAttrSetSigMask(attr, sigset), "setsigmask");
            _ = Interop.SigFillSet(sigset);
            Check(Interop.PosixSpawnAttrSetSigDefault(attr, sigset), "setsigdefault");

            Check(Interop.PosixSpawnFileActionsAddOpen(actions, 0, strings.DevNull, Interop.O_RDONLY, 0), "addopen stdin");
            if (output is not null)
            {
                output.DangerousAddRef(ref addedRef);
                var fd = (int)output.DangerousGetHandle();
                Check(Interop.PosixSpawnFileActionsAddDup2(actions, fd, 1), "adddup2 stdout");
                Check(Interop.PosixSpawnFileActionsAddDup2(actions, fd, 2), "adddup2 stderr");
            }
            else
            {
                Check(Interop.PosixSpawnFileActionsAddOpen(actions, 1, strings.DevNull, Interop.O_WRONLY, 0), "addopen stdout");
                Check(Interop.PosixSpawnFileActionsAddDup2(actions, 1, 2), "adddup2 stderr");
            }

            Check(Interop.PosixSpawnFileActionsAddCloseFrom(actions, 3), "addclosefrom");
            if (strings.WorkingDirectory is not null)
            {
                Check(Interop.PosixSpawnFileActionsAddChdir(actions, strings.WorkingDirectory), "addchdir");
            }

            // umask belongs to the whole process, and posix_spawn has no attribute for it: set it around the spawn,
            // under the table's lock. Nothing else in the daemon creates files while services run.
            var previousUmask = request.Umask is { } umask ? Interop.Umask((uint)umask) : (uint?)null;
            int result;
            int pid;
            try
            {
                result = Interop.PosixSpawn(out pid, strings.Path, actions, attr, strings.Argv, strings.Envp);
            }
            finally
            {
                if (previousUmask is { } restore)
                {
                    _ = Interop.Umask(restore);
                }
            }

            if (result != 0)
            {
                throw new IOException($"cannot start {request.Path}: {Interop.Describe(result)} (errno {result})");
            }

            return pid;
        }
        finally
        {
            _ = Interop.PosixSpawnFileActionsDestroy(actions);
            _ = Interop.PosixSpawnAttrDestroy(attr);
            GC.KeepAlive(strings);
            if (addedRef)
            {
                output!.DangerousRelease();
            }
        }
    }

    private static void Check(int result, string what)
    {
        if (result != 0)
        {
            throw new IOException($"{what} failed: {Interop.Describe(result)} (errno {result})");
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var watch in _tracked.Values)
            {
                watch.Dispose();
            }

            _tracked.Clear();
        }

        _sigchld?.Dispose();
    }

    private sealed class NoWatch : IDisposable
    {
        public static readonly NoWatch Instance = new();

        public void Dispose() { }
    }

    /// <summary>argv, envp and paths as NUL-terminated UTF-8 in one native block, freed after the spawn.</summary>
    private unsafe sealed class NativeStrings : SafeHandle
    {
        private readonly byte* _block;

        public NativeStrings(SpawnRequest request) : base(IntPtr.Zero, ownsHandle: true)
        {
            var all = new List<string> { request.Path, "/dev/null" };
            all.AddRange(request.Arguments);
            all.AddRange(request.Environment);
            if (request.WorkingDirectory is not null)
            {
                all.Add(request.WorkingDirectory);
            }

            var pointers = request.Arguments.Count + 1 + request.Environment.Count + 1;
            var textBytes = 0;
            foreach (var s in all)
            {
                if (s.Contains('\0', StringComparison.Ordinal))
                {
                    throw new ArgumentException($"a NUL character in \"{s.Replace("\0", "\\0", StringComparison.Ordinal)}\"", nameof(request));
                }

                textBytes = checked(textBytes + Encoding.UTF8.GetByteCount(s) + 1);
            }

            _block = (byte*)NativeMemory.Alloc((nuint)(pointers * sizeof(byte*) + textBytes));
            SetHandle((IntPtr)_block);
            var table = (byte**)_block;
            var cursor = _block + (pointers * sizeof(byte*));
            var end = _block + (pointers * sizeof(byte*)) + textBytes;

            byte* Put(string s)
            {
                var start = cursor;
                var written = Encoding.UTF8.GetBytes(s, new Span<byte>(cursor, (int)(end - cursor)));
                cursor[written] = 0;
                cursor += written + 1;
                return start;
            }

            Path = Put(request.Path);
            DevNull = Put("/dev/null");
            Argv = table;
            foreach (var argument in request.Arguments)
            {
                *table++ = Put(argument);
            }

            *table++ = null;
            Envp = table;
            foreach (var variable in request.Environment)
            {
                *table++ = Put(variable);
            }

            *table = null;
            WorkingDirectory = request.WorkingDirectory is null ? null : Put(request.WorkingDirectory);
        }

        public byte* Path { get; }

        public byte* DevNull { get; }

        public byte** Argv { get; }

        public byte** Envp { get; }

        public byte* WorkingDirectory { get; }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMemory.Free((void*)handle);
            return true;
        }
    }
}
