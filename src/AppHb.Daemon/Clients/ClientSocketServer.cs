using System.Net.Sockets;
using AppHb.Daemon.Events;
using AppHb.Core.Heartbeats;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Status;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Clients;

/// <summary>Listens on the Unix stream socket and serves each connection with a <see cref="ClientConnection"/>.
/// The socket is bound in <see cref="StartAsync"/> so that a daemon that cannot listen does not start at all.</summary>
internal sealed class ClientSocketServer : IHostedService, IAsyncDisposable
{
    private readonly SocketOptions _options;
    private readonly HeartbeatRegistry _registry;
    private readonly EventBroadcaster _broadcaster;
    private readonly ProcessExitWatcher _exits;
    private readonly StatusReporter _status;
    private readonly ControlHandler _control;
    private readonly ILogger<ClientSocketServer> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private readonly HashSet<Task> _connections = [];
    private Socket? _listener;
    private Task? _acceptLoop;

    public ClientSocketServer(ApphbdOptions options, HeartbeatRegistry registry, EventBroadcaster broadcaster, ProcessExitWatcher exits,
        StatusReporter status, ControlHandler control, ILogger<ClientSocketServer> logger)
    {
        _options = options.Socket;
        _registry = registry;
        _broadcaster = broadcaster;
        _exits = exits;
        _status = status;
        _control = control;
        _logger = logger;
    }

    public string SocketPath => _options.Path;

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

        _listener = listener;
        _acceptLoop = AcceptAsync(listener, _stopping.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        Task[] open;
        lock (_gate)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open).WaitAsync(cancellationToken).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        TryDelete(_options.Path);
    }

    public async ValueTask DisposeAsync()
    {
        _listener?.Dispose();
        _stopping.Dispose();
        await ValueTask.CompletedTask;
    }

    private async Task AcceptAsync(Socket listener, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await listener.AcceptAsync(cancellationToken);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
            {
                // Out of descriptors: serving existing clients matters more; back off instead of spinning.
                Log.AcceptFailed(_logger, e);
                await Task.Delay(TimeSpan.FromMilliseconds(100), CancellationToken.None);
                continue;
            }

            var connection = new ClientConnection(accepted, _registry, _broadcaster, _exits, _status, _control, _logger);
            var task = connection.RunAsync(cancellationToken);
            lock (_gate)
            {
                _connections.Add(task);
            }

            _ = task.ContinueWith(t =>
            {
                lock (_gate)
                {
                    _connections.Remove(t);
                }
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
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
