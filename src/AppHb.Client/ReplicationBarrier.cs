using AppHb.Client.Internal;
using AppHb.Protocol;

namespace AppHb.Client;

/// <summary>The replication barrier (<see cref="AppHbControl.SyncReplicationAsync"/>) over one connection kept to
/// apphbd, for an application that calls it at every commit: no connection is made and closed per call. Calls are
/// served one at a time, in order; a connection lost or a call cancelled mid-way is dropped and the next call makes
/// a new one.</summary>
public sealed class ReplicationBarrier : IAsyncDisposable
{
    private readonly string _socketPath;
    private readonly SemaphoreSlim _one = new(1, 1);
    private FrameConnection? _connection;
    private uint _sequence;

    /// <summary>A barrier for the daemon at <paramref name="socketPath"/> (default: <see cref="HeartbeatClientOptions.DefaultSocketPath"/>);
    /// it connects at the first call.</summary>
    public ReplicationBarrier(string? socketPath = null) => _socketPath = socketPath ?? HeartbeatClientOptions.DefaultSocketPath;

    /// <summary>Returns once every change made in the replicated directory before the call is durable on the standby
    /// (as <see cref="AppHbControl.SyncReplicationAsync"/>).</summary>
    /// <exception cref="AppHbException">Not confirmed: the message says why (the peer unreachable or behind past
    /// replication.barrier-timeout, this node not the active one, nothing replicated). Never a false success.</exception>
    /// <exception cref="DaemonUnavailableException">apphbd cannot be reached, or the connection was lost during the call.</exception>
    public async Task SyncAsync(CancellationToken cancellationToken = default)
    {
        await _one.WaitAsync(cancellationToken);
        var keep = false;
        try
        {
            _connection ??= await FrameConnection.ConnectAsync(_socketPath, cancellationToken);
            var sequence = ++_sequence;
            await _connection.SendRequestAsync(FrameWriter.ToArray(new ControlRequest(ControlAction.ReplicationSync, string.Empty, 0), sequence), _socketPath, cancellationToken);
            try
            {
                await AppHbControl.ReceiveDocumentAsync(_connection, FrameType.ControlResult, cancellationToken, sequence);
            }
            catch (AppHbException e) when (e.Code is not null)
            {
                // apphbd answered with its Error frame (a refusal, a timeout): the connection serves the next call.
                keep = true;
                throw;
            }

            keep = true;
        }
        finally
        {
            if (!keep && _connection is not null)
            {
                // Lost, or cancelled with the reply still to come (it would be taken for the next call's).
                await _connection.DisposeAsync();
                _connection = null;
            }

            _one.Release();
        }
    }

    /// <summary>Closes the connection, once a call under way has ended.</summary>
    public async ValueTask DisposeAsync()
    {
        await _one.WaitAsync();
        try
        {
            if (_connection is not null)
            {
                await _connection.DisposeAsync();
                _connection = null;
            }
        }
        finally
        {
            _one.Release();
        }

        _one.Dispose();
    }
}
