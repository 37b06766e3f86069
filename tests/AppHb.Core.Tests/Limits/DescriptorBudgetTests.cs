using AppHb.Core.Limits;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Core.Tests.Limits;

/// <summary>The budget that keeps clients off the daemon's last descriptors, against a scripted process: its counts are
/// the test's, its clock is fake.</summary>
public sealed class DescriptorBudgetTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));

    /// <summary>A process with a fixed number of its own descriptors, each connection holding <see cref="DescriptorBudget.PerConnection"/>.</summary>
    private sealed class Process(int own, ulong limit)
    {
        public int Own { get; set; } = own;

        public int Connections { get; set; }

        public int Counts { get; private set; }

        public bool Exhausted { get; set; }

        /// <summary>A connection is being decided on: it holds its socket already.</summary>
        public bool Pending { get; set; }

        public DescriptorCount? Count()
        {
            Counts++;
            return Exhausted ? null : new DescriptorCount(Own + (Connections * DescriptorBudget.PerConnection) + (Pending ? 1 : 0), limit);
        }

        public bool Decide(DescriptorBudget budget)
        {
            Pending = true;
            var may = budget.MayHold(Connections);
            Pending = false;
            return may;
        }
    }

    private static int Fill(DescriptorBudget budget, Process process, int most)
    {
        while (process.Connections < most && process.Decide(budget))
        {
            process.Connections++;
        }

        return process.Connections;
    }

    [Theory]
    [InlineData(300u, 32)]
    [InlineData(1024u, 64)]
    [InlineData(1_048_576u, 256)]
    public void Headroom_is_a_sixteenth_of_the_limit_between_32_and_256(ulong limit, int headroom) =>
        Assert.Equal(headroom, DescriptorBudget.Headroom(limit));

    [Fact]
    public void A_flood_is_held_only_up_to_the_headroom_below_the_limit_and_counted_only_near_it()
    {
        var process = new Process(own: 60, limit: 300);
        var budget = new DescriptorBudget(process.Count, _clock);
        var initialCounts = process.Counts;
        _clock.Advance(TimeSpan.FromSeconds(2));

        var held = Fill(budget, process, most: 1000);
        // 60 + 2 x 104 = 268 = 300 - 32: the next one would eat into the headroom.
        Assert.Equal(104, held);
        Assert.True(60 + (held * DescriptorBudget.PerConnection) <= 300 - DescriptorBudget.Headroom(300));
        // Counted once when it came near the ceiling, not per accept.
        Assert.Equal(1, process.Counts - initialCounts);

        // Refused again and again within the recount interval: no further count.
        for (var i = 0; i < 50; i++)
        {
            Assert.False(process.Decide(budget));
        }

        Assert.Equal(1, process.Counts - initialCounts);
    }

    [Fact]
    public void Descriptors_the_daemon_opened_meanwhile_are_found_by_the_count_near_the_ceiling()
    {
        var process = new Process(own: 60, limit: 300);
        var budget = new DescriptorBudget(process.Count, _clock);
        Fill(budget, process, most: 50);
        // Services started and checks ran: 40 more of its own than at the first count.
        process.Own = 100;
        _clock.Advance(DescriptorBudget.StaleAfter);

        var held = Fill(budget, process, most: 1000);
        Assert.Equal(84, held);
        Assert.True(100 + (held * DescriptorBudget.PerConnection) <= 300 - DescriptorBudget.Headroom(300));
    }

    [Fact]
    public void Closed_connections_make_room_again_and_the_episode_ends_only_with_half_the_headroom_back()
    {
        var process = new Process(own: 60, limit: 300);
        var budget = new DescriptorBudget(process.Count, _clock);
        var held = Fill(budget, process, most: 1000);
        Assert.False(budget.Comfortable(held));

        // One closes: one comes (its estimate gives back one descriptor per closed connection, a count finds two).
        process.Connections -= 1;
        _clock.Advance(DescriptorBudget.RecountInterval);
        Assert.True(process.Decide(budget));
        process.Connections += 1;
        Assert.False(budget.Comfortable(process.Connections));

        // More than half the headroom's worth of connections gone: comfortable.
        process.Connections -= 9;
        _clock.Advance(DescriptorBudget.RecountInterval);
        Assert.True(process.Decide(budget));
        Assert.True(budget.Comfortable(process.Connections));
    }

    [Fact]
    public void A_count_that_finds_no_descriptor_free_refuses()
    {
        var process = new Process(own: 60, limit: 300);
        var budget = new DescriptorBudget(process.Count, _clock);
        process.Connections = 100;
        process.Exhausted = true;
        _clock.Advance(DescriptorBudget.RecountInterval);
        Assert.False(process.Decide(budget));
    }

    [Fact]
    public void A_raised_limit_is_seen_at_the_next_count()
    {
        var process = new Process(own: 60, limit: 300);
        var budget = new DescriptorBudget(process.Count, _clock);
        Fill(budget, process, most: 1000);
        var raised = new Process(own: 60, limit: 4096) { Connections = process.Connections };
        var later = new DescriptorBudget(raised.Count, _clock, raised.Connections);
        Assert.Equal(4096u, later.Limit);
        Assert.True(raised.Decide(later));
    }
}
