using System.Security.Cryptography;
using AppHb.Replication.Transfer;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The standby's read-ahead over a real loopback connection: frames come out in order with the connection's
/// end after the last of them, and no more than its budget is held while nothing is taken.</summary>
public sealed class FrameReadAheadTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    [Fact]
    public async Task Frames_come_out_in_order_and_the_connection_s_end_only_after_the_last_of_them()
    {
        await using var pair = await Connected.OpenAsync(_key, _key);
        var sent = Enumerable.Range(0, 60).Select(i => RandomNumberGenerator.GetBytes(1 + (i * 7919 % 300_000))).ToList();
        // The first byte is the message kind, which the channel itself reads (a compressed message is inflated).
        sent.ForEach(payload => payload[0] = 0);
        await using var frames = new FrameReadAhead(pair.Receiver, budget: 1 << 20, TestContext.Current.CancellationToken);
        var sending = Task.Run(async () =>
        {
            foreach (var payload in sent)
            {
                await pair.Sender.SendAsync(payload, TestContext.Current.CancellationToken);
            }

            pair.CloseSenderEnd();
        }, TestContext.Current.CancellationToken);
        foreach (var payload in sent)
        {
            using var taken = await frames.TakeAsync(TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken);
            Assert.Equal(payload, taken.ToArray());
        }

        var end = await Assert.ThrowsAsync<ReplicationRefusedException>(() => frames.TakeAsync(TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken));
        Assert.Contains("closed the connection", end.Message, StringComparison.Ordinal);
        await sending;
    }

    [Fact]
    public async Task While_nothing_is_taken_it_holds_its_budget_and_one_frame_at_most_and_the_sender_waits()
    {
        const int Budget = 1 << 20;
        const int FrameBytes = 256 << 10;
        const int Frames = 80; // 20 MiB: far more than the budget and loopback's socket buffers together
        await using var pair = await Connected.OpenAsync(_key, _key);
        await using var frames = new FrameReadAhead(pair.Receiver, Budget, TestContext.Current.CancellationToken);
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < Frames; i++)
            {
                var payload = new byte[FrameBytes];
                payload[1] = (byte)i; // [0] is the message kind, which the channel reads (Compressed)
                await pair.Sender.SendAsync(payload, TestContext.Current.CancellationToken);
            }
        }, TestContext.Current.CancellationToken);

        Assert.True(await Polling.UntilAsync(() => Task.FromResult(frames.HeldBytes >= Budget), Patience, TestContext.Current.CancellationToken),
            $"the read-ahead held {frames.HeldBytes} bytes, never its budget");
        // Long enough for loopback to carry the whole 20 MiB many times over, were the budget not kept.
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        Assert.InRange(frames.HeldBytes, Budget, Budget + FrameBytes);
        Assert.False(sending.IsCompleted, "the sender sent everything while nothing was taken");

        for (var i = 0; i < Frames; i++)
        {
            using var taken = await frames.TakeAsync(TestContext.Current.CancellationToken).WaitAsync(Patience, TestContext.Current.CancellationToken);
            Assert.Equal((byte)i, taken.Span[1]);
        }

        await sending.WaitAsync(Patience, TestContext.Current.CancellationToken);
        Assert.Equal(0, frames.HeldBytes);
    }
}
