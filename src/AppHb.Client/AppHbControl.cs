using System.Runtime.CompilerServices;
using AppHb.Client.Internal;
using AppHb.Protocol;

namespace AppHb.Client;

/// <summary>Reads apphbd's state: the status document and the event stream (what apphbctl uses).</summary>
public sealed class AppHbControl
{
    private readonly string _socketPath;

    /// <summary>Creates a reader for the daemon at <paramref name="socketPath"/> (default: <see cref="HeartbeatClientOptions.DefaultSocketPath"/>).</summary>
    public AppHbControl(string? socketPath = null) => _socketPath = socketPath ?? HeartbeatClientOptions.DefaultSocketPath;

    /// <summary>Asks for the daemon's status: itself, its watchdog, and every client.</summary>
    /// <exception cref="DaemonUnavailableException">apphbd cannot be reached.</exception>
    public async Task<StatusDocument> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await FrameConnection.ConnectAsync(_socketPath, cancellationToken);
        await connection.SendAsync(FrameWriter.EmptyToArray(FrameType.StatusRequest, 1), cancellationToken);
        using var document = new MemoryStream();
        while (true)
        {
            var frame = await connection.ReceiveAsync(cancellationToken)
                ?? throw new DaemonUnavailableException("apphbd closed the connection before sending its status");
            if (frame.Header.Type == FrameType.Error)
            {
                var error = ErrorReply.Read(frame.Payload);
                throw new AppHbException(error.Code, error.Message);
            }

            if (frame.Header.Type != FrameType.Status)
            {
                throw new AppHbException($"expected a Status frame, got {frame.Header.Type}");
            }

            document.Write(frame.Payload);
            if ((frame.Header.Flags & FrameFlags.More) == 0)
            {
                return ProtocolJsonContext.ReadStatus(document.GetBuffer().AsSpan(0, (int)document.Length));
            }
        }
    }

    /// <summary>Streams events as they happen, optionally starting with the daemon's recent history.</summary>
    public async IAsyncEnumerable<EventDocument> WatchEventsAsync(bool includeHistory,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var connection = await FrameConnection.ConnectAsync(_socketPath, cancellationToken);
        var flags = includeHistory ? FrameFlags.ReplayHistory : FrameFlags.None;
        await connection.SendAsync(FrameWriter.EmptyToArray(FrameType.Subscribe, 1, flags), cancellationToken);
        while (await connection.ReceiveAsync(cancellationToken) is { } frame)
        {
            switch (frame.Header.Type)
            {
                case FrameType.Event:
                    yield return ProtocolJsonContext.ReadEvent(frame.Payload);
                    break;
                case FrameType.Ok:
                    break;
                case FrameType.Error:
                    var error = ErrorReply.Read(frame.Payload);
                    throw new AppHbException(error.Code, error.Message);
                default:
                    throw new AppHbException($"unexpected {frame.Header.Type} frame on an event stream");
            }
        }
    }
}
