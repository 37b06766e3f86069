using System.Security.Cryptography;
using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Capture;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The barrier (the pair's fsync): once it returns, every change made before it is on the peer, durable;
/// with the peer unreachable it fails after its timeout, never a false success.</summary>
public sealed class BarrierTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task After_the_barrier_returns_every_write_made_before_it_is_on_the_replica()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = _directory.File("replica");
        var key = RandomNumberGenerator.GetBytes(32);
        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = CapturePump.Start(source, new Journaler(source, journal, new DataGeneration(1, 1)), journal);
        await using var connection = await Connected.OpenAsync(key, key);
        using var stop = new CancellationTokenSource();
        var sending = pump.Sender.RunAsync(connection.Sender, stop.Token);
        var receiving = new ReplicationReceiver(new CutApplier(replica, _directory.File("state"))).RunAsync(connection.Receiver, stop.Token);

        // An application's transactions: write, barrier, then acknowledge its user; the replica is checked at once,
        // without waiting: the barrier's return is the promise.
        for (var transaction = 0; transaction < 50; transaction++)
        {
            var name = $"txn{transaction % 7}";
            await File.WriteAllTextAsync(Path.Combine(source, name), $"transaction {transaction}", TestContext.Current.CancellationToken);
            await pump.BarrierAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken, visible: true);
            Assert.Equal($"transaction {transaction}", File.ReadAllText(Path.Combine(replica, name)));
        }

        Assert.Empty(Directory.EnumerateFiles(replica, CapturePump.BarrierFilePrefix + "*"));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => Task.WhenAll(sending, receiving));
    }

    [Fact]
    public async Task A_write_the_durable_barrier_confirmed_is_in_the_replica_after_the_standby_stops_at_once_and_recovers()
    {
        // The application's barrier returns once the change is durable on the standby (its receive log), maybe before
        // it is applied there: stopped right then, the standby's recovery (a restart's, a takeover's) applies it.
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = _directory.File("replica");
        var state = _directory.File("state");
        var key = RandomNumberGenerator.GetBytes(32);
        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = CapturePump.Start(source, new Journaler(source, journal, new DataGeneration(1, 1)), journal);
        var recovered = 0;
        for (var transaction = 0; transaction < 20; transaction++)
        {
            await using var connection = await Connected.OpenAsync(key, key);
            using var stop = new CancellationTokenSource();
            var sending = pump.Sender.RunAsync(connection.Sender, stop.Token);
            var receiving = new ReplicationReceiver(new CutApplier(replica, state)).RunAsync(connection.Receiver, stop.Token);
            var name = $"txn{transaction % 3}";
            await File.WriteAllTextAsync(Path.Combine(source, name), $"transaction {transaction}", TestContext.Current.CancellationToken);
            await pump.BarrierAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
            await stop.CancelAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => Task.WhenAll(sending, receiving));

            if (new CutApplier(replica, state).Recover() is { } done && done.Contains("acknowledged cut", StringComparison.Ordinal))
            {
                recovered++;
            }

            Assert.Equal($"transaction {transaction}", File.ReadAllText(Path.Combine(replica, name)));
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"{recovered} of 20 barriers were applied by the recovery, the others before the stop");
    }

    [Fact]
    public async Task A_barrier_file_a_crash_left_behind_is_removed_when_the_pump_starts()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        File.WriteAllBytes(Path.Combine(source, CapturePump.BarrierFilePrefix + "2"), []);
        File.WriteAllText(Path.Combine(source, "data"), "the application's");
        using var journal = JournalFile.Open(_directory.File("journal"));

        await using var pump = CapturePump.Start(source, new Journaler(source, journal, new DataGeneration(1, 1)), journal);

        Assert.Equal(["data"], Directory.GetFiles(source).Select(Path.GetFileName));
    }

    [Fact]
    public async Task With_the_peer_unreachable_the_barrier_fails_after_its_timeout_saying_so()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = CapturePump.Start(source, new Journaler(source, journal, new DataGeneration(1, 1)), journal);
        await File.WriteAllTextAsync(Path.Combine(source, "a"), "never confirmed", TestContext.Current.CancellationToken);

        var failed = await Assert.ThrowsAsync<TimeoutException>(() => pump.BarrierAsync(TimeSpan.FromMilliseconds(500), TestContext.Current.CancellationToken));
        Assert.Contains("did not confirm", failed.Message, StringComparison.Ordinal);
        Assert.Contains("nothing is confirmed", failed.Message, StringComparison.Ordinal);
    }
}
