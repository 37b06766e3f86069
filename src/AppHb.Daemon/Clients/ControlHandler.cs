using System.Buffers;
using System.Text.Json;
using AppHb.Core.Heartbeats;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Services;
using AppHb.Linux.Accounts;
using AppHb.Protocol;

namespace AppHb.Daemon.Clients;

/// <summary>Carries out apphbctl's start / stop / restart / logs / reload and the pair's switchover / failback /
/// standby / unstandby / resolve. Heartbeat clients and status readers may
/// be any member of the socket's group; control is for root and the daemon's own user only.</summary>
internal sealed class ControlHandler(ServiceSupervisor supervisor, Cluster.ClusterHost cluster, Cluster.ReplicationHost replication)
{
    /// <param name="cancellationToken">Cancelled when apphbctl leaves or apphbd stops: what was asked is done, the
    /// wait for its outcome ends.</param>
    public async Task<byte[]> HandleAsync(ControlRequest request, uint sequence, PeerCredentials peer, CancellationToken cancellationToken)
    {
        // The replication barrier changes nothing: any user the socket lets in may wait on it (an application that
        // commits, then syncs, then acknowledges its user).
        if (peer.Uid != 0 && peer.Uid != UnixAccounts.EffectiveUserId && request.Action != ControlAction.ReplicationSync)
        {
            return Error(ErrorCode.PermissionDenied, $"Control: uid {peer.Uid} may not control services or the pair; only root or apphbd's own user may", sequence);
        }

        ControlResultDocument result;
        try
        {
            result = request.Action switch
            {
                ControlAction.Start => await supervisor.StartServiceAsync(request.Name, cancellationToken),
                ControlAction.Stop => await supervisor.StopServiceAsync(request.Name, cancellationToken),
                ControlAction.Restart => await supervisor.RestartServiceAsync(request.Name, cancellationToken),
                ControlAction.Logs => supervisor.Logs(request.Name, (int)Math.Clamp(request.Lines == 0 ? 50 : request.Lines, 1, 10_000)),
                ControlAction.Reload => await supervisor.ReloadAsync(cancellationToken),
                ControlAction.Switchover => await cluster.SwitchoverAsync(failback: false, cancellationToken),
                ControlAction.Failback => await cluster.SwitchoverAsync(failback: true, cancellationToken),
                ControlAction.Standby => await cluster.StandbyAsync(on: true, cancellationToken),
                ControlAction.Unstandby => await cluster.StandbyAsync(on: false, cancellationToken),
                ControlAction.Resolve => await cluster.ResolveAsync(request.Name, cancellationToken),
                ControlAction.ReplicationSync => await replication.SyncAsync(request.Name == ControlRequest.SyncApplied, cancellationToken),
                ControlAction.ReplicationVerify => await replication.VerifyAsync(repair: false, cancellationToken),
                ControlAction.ReplicationRepair => await replication.VerifyAsync(repair: true, cancellationToken),
                _ => throw new ProtocolException(ErrorCode.InvalidArgument, $"Control: unknown action {request.Action}"),
            };
        }
        catch (KeyNotFoundException e)
        {
            return Error(ErrorCode.UnknownService, e.Message, sequence);
        }
        catch (ConfigurationException e)
        {
            return Error(ErrorCode.Failed, "reload refused, nothing changed:\n" + string.Join('\n', e.Errors), sequence);
        }
        catch (InvalidOperationException e)
        {
            // The machine refused (apphbd is stopping, the node is rebooting; the pair's reason).
            return Error(ErrorCode.Failed, e.Message, sequence);
        }

        var document = new ArrayBufferWriter<byte>();
        FrameWriter.WriteDocument(document, FrameType.ControlResult, sequence, JsonSerializer.SerializeToUtf8Bytes(result, ProtocolJsonContext.Default.ControlResultDocument));
        return document.WrittenSpan.ToArray();
    }

    private static byte[] Error(ErrorCode code, string message, uint sequence)
    {
        // An Error frame holds one frame's worth; a long list of configuration errors is cut, never the reply.
        const int limit = 16_000;
        var text = message.Length > limit ? message[..limit] + "\n..." : message;
        return FrameWriter.ToArray(ErrorReply.Create(code, text), sequence);
    }
}
