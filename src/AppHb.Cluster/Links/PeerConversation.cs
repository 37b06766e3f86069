using System.Collections.Concurrent;
using AppHb.Cluster.Wire;

namespace AppHb.Cluster.Links;

/// <summary>Numbers this node's datagrams: one sequence for all links within a boot (the peer's single replay window
/// expects exactly that), never 0, never reused within the boot.</summary>
public sealed class OutgoingHeaders(uint clusterId, ushort me, ushort peer, ulong bootEpoch)
{
    private long _sequence;

    public PeerHeader Next() => new(clusterId, me, peer, bootEpoch, (ulong)Interlocked.Increment(ref _sequence));
}

/// <summary>Requests to the peer that need an answer (release the group, I have released it, fence yourself over this
/// link): each gets an id, is sent on every link and sent again every retry interval until the peer's reply with that
/// id arrives, or its timeout passes. Replies come in through <see cref="Answered"/> from the links' receive loops.</summary>
public sealed class PeerRequester(IReadOnlyList<PeerLinkSocket> links, OutgoingHeaders headers, TimeProvider time)
{
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<PeerReply>> _waiting = new();
    private long _nextId = time.GetUtcNow().ToUnixTimeMilliseconds() << 16;

    /// <summary>Asks the peer; its reply, or null when none came within <paramref name="timeout"/> (the peer is gone,
    /// or every link is down: the caller decides what a missing answer means, never this).</summary>
    /// <param name="only">Send on links of this kind only (the peer-link fence: the dedicated link); every link when null.
    /// One requester serves every kind, so that every reply finds its request.</param>
    public async Task<PeerReply?> AskAsync(PeerRequestKind kind, string reason, TimeSpan timeout, TimeSpan retry, CancellationToken cancellationToken,
        Core.Cluster.LinkKind? only = null)
    {
        // Ids are unique across this node's boots too (milliseconds at start, shifted): a late reply to an earlier
        // boot's request can never complete one of this boot's.
        var id = (ulong)Interlocked.Increment(ref _nextId);
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
                        link.Send(new PeerRequest(headers.Next(), id, kind, reason));
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

            _answers[request.Id] = null;
            _order.Enqueue(request.Id);
            while (_order.Count > Remembered)
            {
                _answers.Remove(_order.Dequeue());
            }
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

    private void Reply(ulong id, (bool Done, string Message) answer)
    {
        foreach (var link in links)
        {
            link.Send(new PeerReply(headers.Next(), id, answer.Done, answer.Message));
        }
    }
}
