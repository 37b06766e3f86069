using System.Net.Sockets;
using AppHb.Core.Heartbeats;
using AppHb.Core.Limits;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Events;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Status;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;
using AppHb.Linux.Sockets;
using AppHb.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace AppHb.Daemon.Clients;

/// <summary>Listens on the Unix stream socket; a <see cref="ConnectionLoop"/> accepts and serves every connection on one
/// thread, each with a <see cref="ClientConnection"/> once it speaks.
/// The socket is bound in <see cref="StartAsync"/> so that a daemon that cannot listen does not start at all.
/// <para>What clients do never takes the daemon down: a uid holds at most <c>clients.max-connections-per-uid</c>
/// connections (root's and apphbd's own beyond it may ask for status and control only); near the open-file limit (a
/// <see cref="DescriptorBudget"/> keeps some free for apphbd's own work) new connections are refused at once with an
/// Error frame, and at the limit itself through a few descriptors held in reserve for exactly that, while root and
/// apphbd's own user are still served; the condition is logged once per episode. When apphbd begins to
/// stop, new connections are refused with ShuttingDown, and at the end every open one is told so and closed.</para></summary>
internal sealed class ClientSocketServer : IHostedService, IAsyncDisposable, IConnectionLoopHost
{
    private const int ReserveDescriptors = 8;
    private readonly SocketOptions _options;
    private readonly ClientLimits _limits;
    private readonly ConnectionServices _services;
    private readonly EventBroadcaster _broadcaster;
    private readonly TimeProvider _time;
    private readonly DaemonHealth _health;
    private readonly ILogger<ClientSocketServer> _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<uint, int> _perUid = [];
    /// <summary>Held connections of root or apphbd's own user beyond the per-uid limit: status and control only.</summary>
    private readonly HashSet<int> _restricted = [];
    private readonly Stack<SafeFileHandle> _reserve = new();
    private readonly CancellationTokenRegistration _stoppingRegistration;
    private Socket? _listener;
    private ConnectionLoop? _loop;
    private DescriptorBudget? _budget;
    private volatile bool _shuttingDown;
    private bool _atFileLimit;
    private long _refused;

    public ClientSocketServer(ApphbdOptions options, HeartbeatRegistry registry, EventBroadcaster broadcaster, ProcessExitWatcher exits,
        StatusReporter status, ControlHandler control, DaemonHealth health, IHostApplicationLifetime lifetime, TimeProvider time,
        ILogger<ClientSocketServer> logger)
    {
        _options = options.Socket;
        _limits = options.Clients;
        _broadcaster = broadcaster;
        _time = time;
        _health = health;
        _logger = logger;
        _services = new ConnectionServices(registry, broadcaster, exits, status, control, options.Clients,
            () => _shuttingDown, new LogBudget(time, perWindow: 10, window: TimeSpan.FromSeconds(10)), logger, Closed);
        // From the moment apphbd begins to stop, nothing new registers or subscribes.
        _stoppingRegistration = lifetime.ApplicationStopping.Register(() =>
        {
            _shuttingDown = true;
            Log.ShuttingDownRefusing(_logger);
        });
        // A client's beat that is waiting unread in its socket is not late: the registry looks before raising.
        registry.PendingBeat = static client => client.Owner is ClientConnection connection && connection.HasQueuedBeat();
    }

    public string SocketPath => _options.Path;

    /// <summary>Connections refused so far (the uid's limit, the open-file limit, shutting down).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Open connections: those served and those held silent so far.</summary>
    public int OpenConnections => _loop is { } loop ? loop.ServedCount + loop.HeldCount : 0;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(_options.Path)!;
        Directory.CreateDirectory(directory);
        RemoveStaleSocket();

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(_options.Path));
            File.SetUnixFileMode(_options.Path, _options.Mode);
            if (_options.Group is { } group)
            {
                if (!UnixAccounts.TryGetGroupId(group, out var gid))
                {
                    throw new InvalidOperationException($"socket.group: group \"{group}\" does not exist on this system");
                }

                UnixAccounts.ChangeGroup(_options.Path, gid);
            }

            listener.Listen(4096);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        RefillReserve();
        _budget = new DescriptorBudget(CountDescriptors, _time);
        _listener = listener;
        _loop = new ConnectionLoop(listener, this, FrameFormat.MaxRequestFrameSize, _limits.ReadTimeout, _limits.SendTimeout, _time);
        // Every client's beats go through this one thread: the watchdog is fed only while it turns.
        _health.WatchClientLoop(_loop.Post);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _shuttingDown = true;
        // No new connection from here; every open one is told why it is being closed before it is: watchers by the
        // broadcaster (which owns the writes on their sockets), the others by the loop.
        var shuttingDown = FrameWriter.ToArray(ErrorReply.Create(ErrorCode.ShuttingDown, "apphbd is shutting down"), 0);
        _broadcaster.SendToAll(shuttingDown);
        if (_loop is not null)
        {
            _health.UnwatchClientLoop();
            await _loop.CloseAllAsync(shuttingDown, static session => session is not ClientConnection { IsWatching: true })
                .WaitAsync(TimeSpan.FromSeconds(5), cancellationToken)
                .ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            _loop.Dispose();
        }

        _listener?.Dispose();
        TryDelete(_options.Path);
    }

    public async ValueTask DisposeAsync()
    {
        _loop?.Dispose();
        _listener?.Dispose();
        await _stoppingRegistration.DisposeAsync();
        lock (_gate)
        {
            while (_reserve.TryPop(out var reserved))
            {
                reserved.Dispose();
            }
        }
    }

    /// <summary>Decides, from the peer's credentials, whether a new connection is held for serving, held for status
    /// and control only, or refused with an Error frame (the loop sends it and closes).</summary>
    byte[]? IConnectionLoopHost.Accepted(AcceptedConnection connection, bool fromReserve)
    {
        var privileged = connection.Uid == 0 || connection.Uid == UnixAccounts.EffectiveUserId;
        string? refusal = null;
        var code = ErrorCode.LimitReached;
        if (_shuttingDown)
        {
            (code, refusal) = (ErrorCode.ShuttingDown, "apphbd is shutting down");
        }
        else if (!privileged && (fromReserve || _budget?.MayHold(OpenConnections) == false))
        {
            refusal = "apphbd is at its open-file limit; try again when connections have closed";
            if (!fromReserve)
            {
                // Refused before the limit itself: the descriptors kept free for apphbd's own work.
                NoteFileLimit(reached: true);
            }
        }

        if (refusal is null)
        {
            lock (_gate)
            {
                var open = _perUid.GetValueOrDefault(connection.Uid);
                if (open >= _limits.MaxConnectionsPerUid)
                {
                    if (privileged)
                    {
                        _restricted.Add(connection.Fd);
                    }
                    else
                    {
                        refusal = $"uid {connection.Uid} has its maximum of {_limits.MaxConnectionsPerUid} connections open (clients.max-connections-per-uid)";
                    }
                }

                if (refusal is null)
                {
                    _perUid[connection.Uid] = open + 1;
                }
            }
        }

        if (refusal is not null)
        {
            Interlocked.Increment(ref _refused);
            return FrameWriter.ToArray(ErrorReply.Create(code, refusal), 0);
        }

        if (!fromReserve)
        {
            NoteFileLimit(reached: false);
        }
        else
        {
            // Root or apphbd's own user, served at the limit: what it asks for (a status reads /proc) needs a
            // descriptor of its own too.
            ReleaseOneReserve();
        }

        return null;
    }

    /// <summary>A connection spoke: from here it has a <see cref="ClientConnection"/> (and its memory).</summary>
    IConnectionSession IConnectionLoopHost.Speaking(ServedConnection connection)
    {
        var held = connection.Accepted;
        bool restricted;
        lock (_gate)
        {
            restricted = _restricted.Remove(held.Fd);
        }

        return new ClientConnection(connection, new PeerCredentials(held.Pid, held.Uid, held.Gid), restricted, _services);
    }

    void IConnectionLoopHost.Left(AcceptedConnection connection)
    {
        lock (_gate)
        {
            _restricted.Remove(connection.Fd);
            CountDeparture(connection.Uid);
        }
    }

    void IConnectionLoopHost.DescriptorFreed() => RefillReserve();

    /// <summary>Out of descriptors: give one of the reserve back, so that the waiting connection can be taken and
    /// answered.</summary>
    bool IConnectionLoopHost.OutOfDescriptors()
    {
        if (!ReleaseOneReserve())
        {
            return false;
        }

        NoteFileLimit(reached: true);
        return true;
    }

    private void Closed(ClientConnection connection)
    {
        lock (_gate)
        {
            CountDeparture(connection.Peer.Uid);
        }
    }

    private void CountDeparture(uint uid)
    {
        if (_perUid.TryGetValue(uid, out var open))
        {
            if (open <= 1)
            {
                _perUid.Remove(uid);
            }
            else
            {
                _perUid[uid] = open - 1;
            }
        }
    }

    /// <summary>Logs the open-file limit once per episode: when it (or the budget's ceiling below it) is first hit, and
    /// when a connection is accepted without the reserve while the reserve is whole again and the budget comfortable.
    /// (At the edge of the limit, one descriptor freed lets one
    /// accept through before the reserve is refilled; counting that as the end of the episode logged it again and again
    /// while the flood went on.)</summary>
    private void NoteFileLimit(bool reached)
    {
        if (!reached && Volatile.Read(ref _atFileLimit))
        {
            // A descriptor is free again (this accept needed none of the reserve): the reserve takes what it lacks.
            RefillReserve();
        }

        int open;
        lock (_gate)
        {
            if (_atFileLimit == reached || (!reached && (_reserve.Count < ReserveDescriptors || _budget?.Comfortable(OpenConnections) == false)))
            {
                return;
            }

            _atFileLimit = reached;
            open = OpenConnections;
        }

        if (reached)
        {
            Log.FileLimitReached(_logger, open);
        }
        else
        {
            Log.FileLimitRecovered(_logger, open, Refused);
        }
    }

    private static DescriptorCount? CountDescriptors() =>
        SelfResources.OpenDescriptors() is var (open, limit) ? new DescriptorCount(open, limit) : null;

    private bool ReleaseOneReserve()
    {
        lock (_gate)
        {
            if (!_reserve.TryPop(out var reserved))
            {
                return false;
            }

            reserved.Dispose();
            return true;
        }
    }

    private void RefillReserve()
    {
        lock (_gate)
        {
            while (_reserve.Count < ReserveDescriptors)
            {
                try
                {
                    _reserve.Push(File.OpenHandle("/dev/null"));
                }
                catch (IOException)
                {
                    return;
                }
            }
        }
    }

    private void RemoveStaleSocket()
    {
        if (!File.Exists(_options.Path))
        {
            return;
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(_options.Path));
        }
        catch (SocketException)
        {
            // Nobody listens: a leftover from a crashed daemon.
            File.Delete(_options.Path);
            return;
        }

        throw new InvalidOperationException($"another apphbd is already listening on {_options.Path}");
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
