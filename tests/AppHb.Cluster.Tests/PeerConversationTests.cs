using System.Diagnostics;
using System.Net;
using System.Text;
using AppHb.Cluster.Fencing;
using AppHb.Cluster.Links;
using AppHb.Cluster.Wire;
using AppHb.Core.Cluster;
using AppHb.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>Requests that need an answer, between two nodes' link sockets in two namespaces: retried until answered,
/// acted on once however many copies arrive, and given up (not answered falsely) when no answer comes.</summary>
public sealed class PeerConversationTests : IAsyncLifetime
{
    private const uint Cluster = 0x41484250;
    private static readonly byte[] Key = Encoding.ASCII.GetBytes("0123456789abcdef0123456789abcdef");
    private static readonly ClusterLink AtA = new("dedicated", LinkKind.Dedicated, "ded0", IPAddress.Parse("10.213.10.1"), IPAddress.Parse("10.213.10.2"), 7406);
    private static readonly ClusterLink AtB = new("dedicated", LinkKind.Dedicated, "ded0", IPAddress.Parse("10.213.10.2"), IPAddress.Parse("10.213.10.1"), 7406);
    private readonly CancellationTokenSource _stop = new();
    private NetworkNamespace _a = null!;
    private NetworkNamespace _b = null!;
    private PeerLinkSocket _linkA = null!;
    private PeerLinkSocket _linkB = null!;
    private PeerRequester _requester = null!;
    private int _acted;
    /// <summary>B's boot as A last accepted it: B's responder is boot 20.</summary>
    private ulong _bootOfB = 20;

    public async ValueTask InitializeAsync()
    {
        _a = await NetworkNamespace.CreateAsync("apphb-ca");
        _b = await NetworkNamespace.CreateAsync("apphb-cb");
        await NetworkNamespace.ConnectAsync(_a, "ded0", "10.213.10.1/24", _b, "ded0", "10.213.10.2/24");
        _linkA = await _a.Run(() => PeerLinkSocket.Open(AtA, Key));
        _linkB = await _b.Run(() => PeerLinkSocket.Open(AtB, Key));
        _requester = new PeerRequester([_linkA], new OutgoingHeaders(Cluster, 1, 2, bootEpoch: 10), () => _bootOfB, TimeProvider.System);
        _ = _linkA.ReceiveAsync(new PeerReceiver(Key, Cluster, peer: 2, me: 1), (d, _) =>
        {
            if (d is PeerReply reply)
            {
                _requester.Answered(reply);
            }
        }, null, _stop.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _linkA.Dispose();
        _linkB.Dispose();
        _a.Dispose();
        _b.Dispose();
        _stop.Dispose();
    }

    [Fact]
    public async Task A_request_is_answered_and_acted_on_once_however_often_it_arrives()
    {
        AnswerAtB(actFor: TimeSpan.FromMilliseconds(300));

        // Retried every 20 ms while B acts for 300 ms: a dozen copies arrive.
        var reply = await _requester.AskAsync(PeerRequestKind.Release, "failback to a", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20), TestContext.Current.CancellationToken);

        Assert.NotNull(reply);
        Assert.True(reply.Done);
        Assert.Equal("released for: failback to a", reply.Message);
        Assert.Equal(1, Volatile.Read(ref _acted));
    }

    [Fact]
    public async Task A_request_meant_for_an_earlier_boot_of_the_peer_is_refused_and_never_acted_on()
    {
        AnswerAtB(actFor: TimeSpan.Zero);
        // A decided about B's boot 19 (a release when the group stopped); B has restarted into boot 20 since.
        _bootOfB = 19;

        var reply = await _requester.AskAsync(PeerRequestKind.Released, "the group is stopped", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20), TestContext.Current.CancellationToken);
        var addressed = await _requester.AskAsync(PeerRequestKind.Released, "the group is stopped", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20),
            TestContext.Current.CancellationToken, to: 20);

        Assert.NotNull(reply);
        Assert.False(reply.Done);
        Assert.Contains("addressed to this node's boot 19, and this is boot 20", reply.Message, StringComparison.Ordinal);
        Assert.NotNull(addressed);
        Assert.True(addressed.Done);
        Assert.Equal(1, Volatile.Read(ref _acted));
    }

    [Fact]
    public async Task A_request_gets_through_once_the_link_comes_back()
    {
        AnswerAtB(actFor: TimeSpan.Zero);
        await _b.IpAsync("link", "set", "ded0", "down");
        var asking = _requester.AskAsync(PeerRequestKind.FenceOverLink, "the LAN is down here", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken);
        await Task.Delay(400, TestContext.Current.CancellationToken);
        Assert.False(asking.IsCompleted);
        await _b.IpAsync("link", "set", "ded0", "up");

        var reply = await asking;
        Assert.NotNull(reply);
        Assert.Equal(1, Volatile.Read(ref _acted));
    }

    [Fact]
    public async Task No_answer_is_no_answer()
    {
        // Nobody receives on B.
        var watch = Stopwatch.StartNew();
        var reply = await _requester.AskAsync(PeerRequestKind.Release, "anyone?", TimeSpan.FromMilliseconds(600), TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken);

        Assert.Null(reply);
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(550), TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(true, "group stopped, 10.213.10.100/24 removed, lan0 down")]
    [InlineData(false, "lan0 could not be set down: Operation not permitted")]
    public async Task The_peer_link_fence_is_what_the_peer_answers(bool done, string message)
    {
        AnswerAtB(TimeSpan.Zero, (done, message));
        var fence = new PeerLinkFenceDriver(_requester, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50));

        var result = await fence.FenceAsync(TestContext.Current.CancellationToken);

        Assert.Equal(done, result.Confirmed);
        Assert.Contains(message, result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_silent_peer_is_never_fenced_by_itself()
    {
        var fence = new PeerLinkFenceDriver(_requester, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(50));

        var result = await fence.FenceAsync(TestContext.Current.CancellationToken);

        Assert.False(result.Confirmed);
        Assert.Contains("no authenticated answer over the dedicated link within 0.5 s", result.Detail, StringComparison.Ordinal);
    }

    private void AnswerAtB(TimeSpan actFor, (bool Done, string Message)? answer = null)
    {
        var responder = new PeerResponder([_linkB], new OutgoingHeaders(Cluster, 2, 1, bootEpoch: 20));
        _ = _linkB.ReceiveAsync(new PeerReceiver(Key, Cluster, peer: 1, me: 2), (d, link) =>
        {
            if (d is PeerRequest request)
            {
                _ = responder.HandleAsync(request, async (r, ct) =>
                {
                    Interlocked.Increment(ref _acted);
                    await Task.Delay(actFor, ct);
                    return answer ?? (true, $"released for: {r.Reason}");
                }, _stop.Token);
            }
        }, null, _stop.Token);
    }
}
