using System.Collections.Concurrent;
using AppHb.Cluster.Wire;

namespace AppHb.Cluster.Links;

/// <summary>Numbers this node's datagrams: one sequence for all links within a boot (the peer's single replay window
/// expects exactly that), never 0, never reused within the boot.</summary>
public sealed class OutgoingHeaders(uint clusterId, ushort me, ushort peer, ulong bootEpoch)
{
    private long _sequence;

    /// <summary>This node's boot epoch: what the peer's requests must be addressed to.</summary>
    public ulong BootEpoch => bootEpoch;

    public PeerHeader Next() => new(clusterId, me, peer, bootEpoch, (ulong)Interlocked.Increment(ref _sequence));
}

/// <summary>Requests to the peer that need an answer (release the group, I have released it, fence yourself over this
/// link): each gets an id, is sent on every link and sent again every retry interval until the peer's reply with that
/// id arrives, or its timeout passes. Replies come in through <see cref="Answered"/> from the links' receive loops.</summary>
/// <param name="peerEpoch">The peer's boot epoch as this node last accepted it: read once per request, which is
/// addressed to that boot of the peer and refused by any later one.</param>
public sealed class PeerRequester(IReadOnlyList<PeerLinkSocket> links, OutgoingHeaders headers, Func<ulong> peerEpoch, TimeProvider time)
{
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<PeerReply>> _waiting = new();
    private long _nextId = time.GetUtcNow().ToUnixTimeMilliseconds() << 16;

    /// <summary>Asks the peer; its reply, or null when none came within <paramref name="timeout"/> (the peer is gone,
    /// or every link is down: the caller decides what a missing answer means, never this).</summary>
    /// <param name="only">Send on links of this kind only (the peer-link fence: the dedicated link); every link when null.
    /// One requester serves every kind, so that every reply finds its request.</param>
    /// <param name="to">The peer's boot the request is about, where the caller decided before asking (a release decided
    /// when the group stopped, asked after the hand-over barrier); the peer's current boot when null.</param>
    public async Task<PeerReply?> AskAsync(PeerRequestKind kind, string reason, TimeSpan timeout, TimeSpan retry, CancellationToken cancellationToken,
        Core.Cluster.LinkKind? only = null, ulong? to = null)
    {
        // Ids are unique across this node's boots too (milliseconds at start, shifted): a late reply to an earlier
        // boot's request can never complete one of this boot's.
        var id = (ulong)Interlocked.Increment(ref _nextId);
        var receiverEpoch = to ?? peerEpoch();
        var reply = new TaskCompletionSource<PeerReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[id] = reply;
        try
        {
            // The timeout on the same clock as the retries: under a fake clock both move together.
            using var expiry = new CancellationTokenSource(timeout, time);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, expiry.Token);
            while (true)
            {
                foreach (var link in links)
                {
                    if (only is null || link.Link.Kind == only)
                    {
                        link.Send(new PeerRequest(headers.Next(), id, kind, receiverEpoch, reason));
                    }
                }

                var answered = reply.Task;
                var pause = Task.Delay(retry, time, deadline.Token);
                if (await Task.WhenAny(answered, pause) == answered)
                {
                    return await answered;
                }

                await pause;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        finally
        {
            _waiting.TryRemove(id, out _);
        }
    }

    /// <summary>A reply arrived on some link; it completes the request with its id, if one still waits (a reply to a
    /// retry after the first reply, or to a request that timed out, changes nothing).</summary>
    public void Answered(PeerReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        if (_waiting.TryRemove(reply.Id, out var waiter))
        {
            waiter.TrySetResult(reply);
        }
    }
}

/// <summary>Answers the peer's requests exactly once each: a request arrives again on every retry and on every link,
/// but its action runs once; while it runs, the copies are ignored (its reply follows), and after it, each copy is
/// answered again with the same reply (the first may have been lost).</summary>
public sealed class PeerResponder(IReadOnlyList<PeerLinkSocket> links, OutgoingHeaders headers)
{
    private const int Remembered = 64;
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, (bool Done, string Message)?> _answers = [];
    private readonly Queue<ulong> _order = new();

    /// <summary>Handles one received request: runs <paramref name="act"/> for a new id and sends its reply on every
    /// link; for an id seen before, resends the reply it got (or nothing while it is still being acted on).</summary>
    public async Task HandleAsync(PeerRequest request, Func<PeerRequest, CancellationToken, Task<(bool Done, string Message)>> act,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(act);
        lock (_gate)
        {
            if (_answers.TryGetValue(request.Id, out var known))
            {
                if (known is { } answer)
                {
                    Reply(request.Id, answer);
                }

                return;
            }

            if (request.ReceiverEpoch != headers.BootEpoch)
            {
                // Decided by the peer about an earlier boot of this node: whatever it asks is about a state this node
                // no longer holds. Answered, so the peer stops retrying; never acted on.
                var stale = (false, $"not acted on: the request was addressed to this node's boot {request.ReceiverEpoch}, and this is boot {headers.BootEpoch} (it restarted since)");
                Remember(request.Id, stale);
                Reply(request.Id, stale);
                return;
            }

            Remember(request.Id, null);
        }

        (bool Done, string Message) result;
        try
        {
            result = await act(request, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            result = (false, $"{request.Kind} failed here: {e.Message}");
        }

        lock (_gate)
        {
            if (_answers.ContainsKey(request.Id))
            {
                _answers[request.Id] = result;
            }
        }

        Reply(request.Id, result);
    }

    /// <summary>Keeps a request's answer (null: being acted on) for the copies still to come; under the gate.</summary>
    private void Remember(ulong id, (bool Done, string Message)? answer)
    {
        _answers[id] = answer;
        _order.Enqueue(id);
        while (_order.Count > Remembered)
        {
            _answers.Remove(_order.Dequeue());
        }
    }

    private void Reply(ulong id, (bool Done, string Message) answer)
    {
        foreach (var link in links)
        {
            link.Send(new PeerReply(headers.Next(), id, answer.Done, answer.Message));
        }
    }
}
