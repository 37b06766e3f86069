using AppHb.Core.Events;
using AppHb.Core.Heartbeats;

namespace AppHb.Core.Tests;

public class EventStreamTests
{
    private static ClientEvent Event(string name) => new(ClientEventKind.Registered,
        new ClientSnapshot(1, name, string.Empty, 1, 0, 0, TimeSpan.FromSeconds(1), TimeSpan.Zero, TimeSpan.Zero, ClientState.Healthy, 0));

    [Theory]
    [InlineData("stray-service-ip", true)]
    [InlineData("both-active", true)]
    [InlineData("fence-failed", true)]
    [InlineData("link-late", false)]
    [InlineData("takeover", false)]
    public void A_pair_event_an_operator_must_act_on_is_a_failure(string kind, bool failure) =>
        Assert.Equal(failure, new PairEvent(new AppHb.Core.Cluster.ClusterEvent(kind, kind, null)).IsFailure);

    [Fact]
    public void Every_subscriber_sees_the_same_order_with_increasing_sequence_numbers()
    {
        var stream = new EventStream();
        using var a = stream.Subscribe();
        using var b = stream.Subscribe();
        Parallel.For(0, 1000, i => stream.Publish(Event("c" + i)));
        var seqA = Read(a).Select(e => e.Sequence).ToList();
        var seqB = Read(b).Select(e => e.Sequence).ToList();
        Assert.Equal(Enumerable.Range(1, 1000).Select(i => (long)i), seqA);
        Assert.Equal(seqA, seqB);
    }

    [Fact]
    public void A_slow_bounded_subscriber_loses_the_oldest_and_counts_them_while_others_lose_nothing()
    {
        var stream = new EventStream();
        using var slow = stream.Subscribe(capacity: 10);
        using var fast = stream.Subscribe();
        for (var i = 0; i < 100; i++)
        {
            stream.Publish(Event("c" + i));
        }

        var kept = Read(slow);
        Assert.Equal(10, kept.Count);
        Assert.Equal(91, kept[0].Sequence);
        Assert.Equal(90, slow.Dropped);
        Assert.Equal(100, Read(fast).Count);
    }

    [Fact]
    public void History_is_replayed_to_a_new_subscriber_before_live_events()
    {
        var stream = new EventStream(historyCapacity: 3);
        for (var i = 0; i < 5; i++)
        {
            stream.Publish(Event("c" + i));
        }

        using var late = stream.Subscribe(replayHistory: true);
        stream.Publish(Event("live"));
        Assert.Equal(new long[] { 3, 4, 5, 6 }, Read(late).Select(e => e.Sequence));
    }

    [Fact]
    public void A_filtered_subscriber_is_offered_and_woken_for_its_events_only()
    {
        var stream = new EventStream();
        using var hung = stream.Subscribe(filter: e => e is ClientEvent { Client.Name: "wanted" });
        stream.Publish(Event("other"));
        stream.Publish(Event("other"));
        // Not woken: the wait times out at once, nothing to read.
        Assert.False(hung.WaitToRead(TimeSpan.Zero, CancellationToken.None));
        stream.Publish(Event("wanted"));
        Assert.True(hung.WaitToRead(TimeSpan.Zero, CancellationToken.None));
        Assert.Equal(new long[] { 3 }, Read(hung).Select(e => e.Sequence));
    }

    [Fact]
    public void Subscribing_says_what_was_published_before_so_history_and_live_events_meet_exactly()
    {
        var stream = new EventStream(historyCapacity: 10);
        stream.Publish(Event("a"));
        stream.Publish(Event("b"));
        using var live = stream.Subscribe(out var before);
        stream.Publish(Event("c"));
        Assert.Equal(2, before);
        Assert.Equal(new long[] { 1, 2 }, stream.History(before).Select(e => e.Sequence));
        Assert.Equal(new long[] { 3 }, Read(live).Select(e => e.Sequence));
    }

    [Fact]
    public void Disposed_subscriptions_receive_nothing_more()
    {
        var stream = new EventStream();
        var s = stream.Subscribe();
        s.Dispose();
        stream.Publish(Event("x"));
        Assert.Empty(Read(s));
    }

    [Fact]
    public void A_blocked_consumer_thread_is_woken_by_the_publish_itself()
    {
        var stream = new EventStream();
        using var subscription = stream.Subscribe();
        Assert.False(subscription.WaitToRead(TimeSpan.FromMilliseconds(20), CancellationToken.None));
        var woken = new ManualResetEventSlim();
        var tid = 0;
        var consumer = new Thread(() =>
        {
            Volatile.Write(ref tid, AppHb.Testing.NativeThreads.CurrentId());
            if (subscription.WaitToRead(TimeSpan.FromSeconds(30), CancellationToken.None))
            {
                woken.Set();
            }
        });
        consumer.Start();
        SpinWait.SpinUntil(() => Volatile.Read(ref tid) != 0);
        // Blocked in the kernel, not merely not yet running: the publish must wake it.
        AppHb.Testing.NativeThreads.WaitUntilSleeping(Volatile.Read(ref tid));
        stream.Publish(Event("x"));
        Assert.True(woken.Wait(TimeSpan.FromSeconds(5)));
        consumer.Join();
        Assert.True(subscription.Reader.TryRead(out _));
    }

    private static List<AppHbEvent> Read(EventSubscription s)
    {
        var list = new List<AppHbEvent>();
        while (s.Reader.TryRead(out var e))
        {
            list.Add(e);
        }

        return list;
    }
}
