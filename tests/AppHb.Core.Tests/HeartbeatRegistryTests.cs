using AppHb.Core.Events;
using AppHb.Core.Heartbeats;

namespace AppHb.Core.Tests;

public class HeartbeatRegistryTests
{
    [Fact]
    public void Late_heartbeat_past_warn_then_interval_raises_warn_then_hung_once_each()
    {
        var h = new RegistryHarness();
        h.Register("db", 1000, 400);
        Assert.Equal(["registered:db"], h.Drain());

        h.RunMs(399);
        Assert.Empty(h.Drain());
        h.RunMs(1);
        Assert.Equal(["warn:db"], h.Drain());
        h.RunMs(599);
        Assert.Empty(h.Drain());
        h.RunMs(1);
        Assert.Equal(["hung:db"], h.Drain());
        h.RunMs(60_000);
        Assert.Empty(h.Drain());
    }

    [Fact]
    public void A_beat_waiting_unread_holds_back_warn_and_hung_until_it_is_read()
    {
        var h = new RegistryHarness();
        var waiting = true;
        h.Registry.PendingBeat = _ => waiting;
        var db = h.Register("db", 1000, 400);
        h.Drain();
        // Deadline passes while the beat sits in the socket: nothing is raised, the registry looks again soon.
        h.RunMs(450);
        Assert.Empty(h.Drain());
        Assert.True(h.Registry.DeferredRaises > 0);
        // The daemon reads it: the beat lands, and the client is healthy without ever having been warn.
        h.Registry.Beat(db);
        waiting = false;
        h.RunMs(300);
        Assert.Empty(h.Drain());
        h.RunMs(200);
        Assert.Equal(["warn:db"], h.Drain());
    }

    [Fact]
    public void A_beat_that_never_gets_read_defers_the_raise_by_one_interval_at_most()
    {
        // A connection whose queued bytes never become a processed beat (stuck reader, a half-sent frame) cannot
        // keep its client alive forever.
        var h = new RegistryHarness();
        h.Registry.PendingBeat = _ => true;
        h.Register("db", 1000, 0);
        h.Drain();
        h.RunMs(1999);
        Assert.Empty(h.Drain());
        h.RunMs(10);
        Assert.Equal(["hung:db"], h.Drain());
    }

    [Fact]
    public void Events_are_raised_exactly_at_their_deadlines_with_zero_lateness_on_an_exact_clock()
    {
        var h = new RegistryHarness();
        h.Register("db", 1000, 400);
        h.RunMs(1500);
        var events = new List<ClientEvent>();
        while (h.Subscription.Reader.TryRead(out var e))
        {
            events.Add((ClientEvent)e);
        }

        Assert.Equal(TimeSpan.Zero, events.Single(e => e.ClientKind == ClientEventKind.Warn).Late);
        Assert.Equal(TimeSpan.Zero, events.Single(e => e.ClientKind == ClientEventKind.Hung).Late);
        Assert.Equal(1000, events.Single(e => e.ClientKind == ClientEventKind.Hung).Client.LastBeatAge.TotalMilliseconds);
    }

    [Fact]
    public void Beats_within_the_warn_time_keep_a_client_silent()
    {
        var h = new RegistryHarness();
        var c = h.Register("web", 1000, 500);
        for (var i = 0; i < 100; i++)
        {
            h.RunMs(499);
            h.Registry.Beat(c);
        }

        Assert.Equal(["registered:web"], h.Drain());
        Assert.Equal(100, h.Registry.Snapshot().Single().Beats);
    }

    [Fact]
    public void A_beat_after_hung_raises_one_recovered_and_a_new_episode_can_begin()
    {
        var h = new RegistryHarness();
        var c = h.Register("db", 1000, 0);
        h.RunMs(1000);
        h.Registry.Beat(c);
        h.Registry.Beat(c);
        h.RunMs(999);
        h.RunMs(1);
        Assert.Equal(["registered:db", "hung:db", "recovered:db", "hung:db"], h.Drain());
    }

    [Fact]
    public void A_beat_during_warn_recovers_and_the_next_warn_counts_from_that_beat()
    {
        var h = new RegistryHarness();
        var c = h.Register("db", 1000, 300);
        h.RunMs(300);
        h.RunMs(100);
        h.Registry.Beat(c);
        h.RunMs(299);
        Assert.Equal(["registered:db", "warn:db", "recovered:db"], h.Drain());
        h.RunMs(1);
        Assert.Equal(["warn:db"], h.Drain());
    }

    [Fact]
    public void Shortening_the_interval_moves_the_deadline_earlier_and_wakes_the_driver()
    {
        var h = new RegistryHarness();
        var c = h.Register("db", 10_000, 0);
        var wakes = h.Wakes;
        h.RunMs(100);
        h.Registry.ChangeTiming(c, HeartbeatTiming.Create(TimeSpan.FromMilliseconds(200), TimeSpan.Zero));
        Assert.True(h.Wakes > wakes);
        h.RunMs(99);
        Assert.Equal(["registered:db"], h.Drain());
        h.RunMs(1);
        Assert.Equal(["hung:db"], h.Drain());
    }

    [Fact]
    public void Lengthening_the_interval_cancels_the_pending_deadline()
    {
        var h = new RegistryHarness();
        var c = h.Register("db", 200, 0);
        h.Registry.ChangeTiming(c, HeartbeatTiming.Create(TimeSpan.FromMilliseconds(5000), TimeSpan.Zero));
        h.RunMs(4999);
        Assert.Equal(["registered:db"], h.Drain());
        h.RunMs(1);
        Assert.Equal(["hung:db"], h.Drain());
    }

    [Fact]
    public void Disconnect_without_unregister_is_died_and_after_unregister_is_nothing()
    {
        var h = new RegistryHarness();
        var a = h.Register("a", 1000, 0);
        var b = h.Register("b", 1000, 0);
        h.Registry.Unregister(a);
        Assert.False(h.Registry.Disconnect(a, "closed"));
        Assert.True(h.Registry.Disconnect(b, "connection closed"));
        h.RunMs(5000);
        Assert.Equal(["registered:a", "registered:b", "unregistered:a", "died:b"], h.Drain());
        Assert.Equal(0, h.Registry.Count);
    }

    [Fact]
    public void Beating_after_leaving_is_refused()
    {
        var h = new RegistryHarness();
        var a = h.Register("a", 1000, 0);
        h.Registry.Unregister(a);
        var e = Assert.Throws<RegistryException>(() => h.Registry.Beat(a));
        Assert.Equal(RegistryRefusal.NotRegistered, e.Refusal);
    }

    [Fact]
    public void Same_name_and_instance_is_a_conflict_naming_the_holder()
    {
        var h = new RegistryHarness();
        h.Register("db", 1000, 0, pid: 77);
        var e = Assert.Throws<RegistryException>(() => h.Register("db", 1000, 0, pid: 88));
        Assert.Equal(RegistryRefusal.Conflict, e.Refusal);
        Assert.Contains("pid 77", e.Message, StringComparison.Ordinal);
        h.Registry.Register(new ClientIdentity("db", "2", new PeerCredentials(88, 0, 0)), HeartbeatTiming.Create(TimeSpan.FromSeconds(1), TimeSpan.Zero));
        Assert.Equal(2, h.Registry.Count);
    }

    [Fact]
    public void The_client_limit_is_enforced()
    {
        var h = new RegistryHarness(maxClients: 2);
        h.Register("a", 1000, 0);
        h.Register("b", 1000, 0);
        var e = Assert.Throws<RegistryException>(() => h.Register("c", 1000, 0));
        Assert.Equal(RegistryRefusal.LimitReached, e.Refusal);
    }

    [Theory]
    [InlineData(5, 0, "interval 5 ms is out of range")]
    [InlineData(1000, 1000, "shorter than the interval")]
    [InlineData(1000, 2000, "shorter than the interval")]
    public void Invalid_timings_are_explained(int intervalMs, int warnMs, string fragment)
    {
        var e = Assert.Throws<ArgumentException>(() => HeartbeatTiming.Create(TimeSpan.FromMilliseconds(intervalMs), TimeSpan.FromMilliseconds(warnMs)));
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ten_thousand_clients_each_go_hung_once_and_the_queue_holds_one_entry_per_client()
    {
        var h = new RegistryHarness();
        var clients = Enumerable.Range(0, 10_000).Select(i => h.Register("c" + i, 1000 + i % 100, 500)).ToList();
        Assert.Equal(10_000, h.Registry.QueuedDeadlines);
        for (var round = 0; round < 10; round++)
        {
            h.RunMs(100);
            foreach (var c in clients.Where((_, i) => i % 2 == 0))
            {
                h.Registry.Beat(c);
            }

            // Beats never touch the queue, and a surfaced deadline replaces itself: one entry per client, always.
            Assert.InRange(h.Registry.QueuedDeadlines, 1, 10_000);
        }

        h.RunMs(2000);
        // A hung client has no deadline left: only a beat changes its state.
        Assert.Equal(0, h.Registry.QueuedDeadlines);
        var events = h.Drain();
        Assert.Equal(10_000, events.Count(e => e.StartsWith("registered", StringComparison.Ordinal)));
        Assert.Equal(10_000, events.Count(e => e.StartsWith("warn", StringComparison.Ordinal)));
        Assert.Equal(10_000, events.Count(e => e.StartsWith("hung", StringComparison.Ordinal)));
        Assert.All(h.Registry.Snapshot(), s => Assert.Equal(ClientState.Hung, s.State));
    }

    [Fact]
    public void Readings_agree_with_snapshots_and_reuse_the_callers_list()
    {
        var h = new RegistryHarness();
        var quiet = h.Register("quiet", intervalMs: 1000, warnMs: 0);
        var busy = h.Register("busy", intervalMs: 500, warnMs: 0, pid: 101);
        h.RunMs(300);
        h.Registry.Beat(busy);
        h.RunMs(1200);

        var readings = new List<ClientReading> { default, default, default };
        h.Registry.Read(readings);

        Assert.Equal(2, readings.Count);
        foreach (var snapshot in h.Registry.Snapshot())
        {
            var reading = readings.Single(r => r.Id == snapshot.Id);
            Assert.Equal((snapshot.Name, snapshot.Instance, snapshot.Interval, snapshot.LastBeatAge, snapshot.State),
                (reading.Name, reading.Instance, reading.Interval, reading.LastBeatAge, reading.State));
        }

        Assert.Equal(ClientState.Hung, readings.Single(r => r.Id == quiet.Id).State);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), readings.Single(r => r.Id == quiet.Id).LastBeatAge);
        Assert.Equal(TimeSpan.FromMilliseconds(1200), readings.Single(r => r.Id == busy.Id).LastBeatAge);
    }
}
