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
        await connection.SendRequestAsync(FrameWriter.EmptyToArray(FrameType.StatusRequest, 1), _socketPath, cancellationToken);
        var document = await ReceiveDocumentAsync(connection, FrameType.Status, cancellationToken);
        return ProtocolJsonContext.ReadStatus(document);
    }

    /// <summary>Starts, stops or restarts a supervised service, reads its recent output (<paramref name="lines"/>
    /// lines), or reloads the configuration (<see cref="ControlAction.Reload"/>, <paramref name="name"/> empty).
    /// Returns once the change took effect (or its time bound passed). Needs root or apphbd's own user.</summary>
    /// <exception cref="AppHbException">The daemon refused: unknown service, not permitted, or an invalid configuration
    /// on reload (the message lists every error).</exception>
    public async Task<ControlResultDocument> ControlAsync(ControlAction action, string name, int lines = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(lines);
        await using var connection = await FrameConnection.ConnectAsync(_socketPath, cancellationToken);
        await connection.SendRequestAsync(FrameWriter.ToArray(new ControlRequest(action, name, (uint)lines), 1), _socketPath, cancellationToken);
        var document = await ReceiveDocumentAsync(connection, FrameType.ControlResult, cancellationToken);
        return ProtocolJsonContext.ReadControlResult(document);
    }

    /// <summary>The replication barrier (apphbd.yaml's <c>replication:</c>): returns once every change made in the
    /// replicated directory before the call is durable on the standby, so an application that commits, calls this,
    /// then acknowledges its user loses nothing it acknowledged if the active node dies. Call it on the active node;
    /// any user that may connect to apphbd's socket may call it (it changes nothing).</summary>
    /// <exception cref="AppHbException">Not confirmed: the peer is unreachable or behind past replication.barrier-timeout,
    /// this node is not the active one, or it replicates nothing (the message says which). Never a false success.</exception>
    public async Task SyncReplicationAsync(CancellationToken cancellationToken = default) =>
        await ControlAsync(ControlAction.ReplicationSync, string.Empty, 0, cancellationToken);

    /// <param name="sequence">The request's sequence number, which every frame of its reply carries (0: not checked).</param>
    internal static async Task<byte[]> ReceiveDocumentAsync(FrameConnection connection, FrameType type, CancellationToken cancellationToken, uint sequence = 0)
    {
        using var document = new MemoryStream();
        while (true)
        {
            var frame = await connection.ReceiveAsync(cancellationToken)
                ?? throw new DaemonUnavailableException($"apphbd closed the connection before sending its {type} document");
            // An Error frame numbered 0 is about the connection itself (refused as it was accepted).
            if (sequence != 0 && frame.Header.Sequence != sequence && !(frame.Header.Type == FrameType.Error && frame.Header.Sequence == 0))
            {
                throw new AppHbException($"a reply to request {frame.Header.Sequence} where the reply to request {sequence} was due");
            }

            if (frame.Header.Type == FrameType.Error)
            {
                var error = ErrorReply.Read(frame.Payload);
                throw new AppHbException(error.Code, error.Message);
            }

            if (frame.Header.Type != type)
            {
                throw new AppHbException($"expected a {type} frame, got {frame.Header.Type}");
            }

            document.Write(frame.Payload);
            if ((frame.Header.Flags & FrameFlags.More) == 0)
            {
                return document.ToArray();
            }
        }
    }

    /// <summary>The <see cref="EventDocument.Kind"/> of the document <see cref="WatchEventsAsync"/> yields where apphbd
    /// dropped events for this watcher (it read too slowly): its <see cref="EventDocument.Sequence"/> is the first
    /// event lost, its message says how many.</summary>
    public const string EventsLostKind = "events-lost";

    /// <summary>Streams events as they happen, optionally starting with the daemon's recent history. Where apphbd had to
    /// drop events for this watcher, one document of kind <see cref="EventsLostKind"/> says so, in place.</summary>
    public async IAsyncEnumerable<EventDocument> WatchEventsAsync(bool includeHistory,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var connection = await FrameConnection.ConnectAsync(_socketPath, cancellationToken);
        var flags = includeHistory ? FrameFlags.ReplayHistory : FrameFlags.None;
        await connection.SendRequestAsync(FrameWriter.EmptyToArray(FrameType.Subscribe, 1, flags), _socketPath, cancellationToken);
        while (await connection.ReceiveAsync(cancellationToken) is { } frame)
        {
            switch (frame.Header.Type)
            {
                case FrameType.Event:
                    yield return ProtocolJsonContext.ReadEvent(frame.Payload);
                    break;
                case FrameType.Ok:
                    break;
                case FrameType.EventsLost:
                    // Said in the stream, where it happened: the events between are gone, not late.
                    var lost = EventsLostReply.Read(frame.Payload);
                    yield return new EventDocument(lost.FirstSequence, DateTimeOffset.UtcNow, EventsLostKind, null, null,
                        $"{lost.Count} event(s) lost from sequence {lost.FirstSequence}: this watcher read too slowly and apphbd dropped them");
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
