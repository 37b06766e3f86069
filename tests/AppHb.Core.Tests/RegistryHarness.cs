using AppHb.Core.Events;
using AppHb.Core.Heartbeats;
using AppHb.Core.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Core.Tests;

/// <summary>A registry on a manual clock, driven the way the daemon's loop drives it: advance to each deadline in
/// turn and expire, so events are raised at (not after) their deadlines.</summary>
internal sealed class RegistryHarness
{
    public RegistryHarness(int maxClients = 100_000)
    {
        Registry = new HeartbeatRegistry(Clock, Events, maxClients) { EarlierDeadlineScheduled = () => Wakes++ };
        Subscription = Events.Subscribe();
        Registry.ExpireDue();
    }

    public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public EventStream Events { get; } = new();

    public HeartbeatRegistry Registry { get; }

    public EventSubscription Subscription { get; }

    public int Wakes { get; private set; }

    public TimeSpan Elapsed { get; private set; }

    public RegisteredClient Register(string name, int intervalMs, int warnMs, int pid = 100) =>
        Registry.Register(new ClientIdentity(name, string.Empty, new PeerCredentials(pid, 1000, 1000)),
            HeartbeatTiming.Create(TimeSpan.FromMilliseconds(intervalMs), TimeSpan.FromMilliseconds(warnMs)));

    /// <summary>Moves time forward by <paramref name="span"/>, stopping at every deadline on the way.</summary>
    public void Run(TimeSpan span)
    {
        var timestamps = new Timestamps(Clock);
        var end = Clock.GetTimestamp() + timestamps.ToTicks(span);
        while (true)
        {
            var next = Registry.ExpireDue();
            var now = Clock.GetTimestamp();
            var target = Math.Min(next, end);
            if (target > now)
            {
                Clock.Advance(timestamps.ToTimeSpan(target - now));
                Elapsed += timestamps.ToTimeSpan(target - now);
            }

            if (next > end)
            {
                Registry.ExpireDue();
                return;
            }
        }
    }

    public void RunMs(int ms) => Run(TimeSpan.FromMilliseconds(ms));

    /// <summary>Kinds of client events since the last call, as "kind:name@ms" with the elapsed time.</summary>
    public List<string> Drain()
    {
        var list = new List<string>();
        while (Subscription.Reader.TryRead(out var e))
        {
            if (e is ClientEvent c)
            {
                list.Add($"{c.Kind}:{c.Client.Name}");
            }
        }

        return list;
    }
}
