using System.Security.Cryptography;
using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Capture;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>lsyncd's churn test on one machine, every part real: a tree changed at random (creates, appends,
/// overwrites, renames, deletions, directory trees made, renamed and removed, symlinks) while the kernel's
/// notifications feed the journaler (the capture pump), the journal goes over a loopback TCP connection, and the
/// replica applies it cut by cut; after a barrier both trees must be identical, by hash. (The version runs
/// between the pair's namespaces once apphbd carries replication.)</summary>
public sealed class ChurnTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(20261201, false)]
    [InlineData(20261202, false)]
    [InlineData(20261203, true)]
    public async Task After_500_random_changes_the_replica_is_identical_to_the_source(int seed, bool overflowMidway)
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = _directory.File("replica");
        Directory.CreateDirectory(replica);
        var key = RandomNumberGenerator.GetBytes(32);
        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = CapturePump.Start(source, new Journaler(source, journal, new DataGeneration(1, 1), blockSize: 4096), journal);
        await using var connection = await Connected.OpenAsync(key, key);
        using var stop = new CancellationTokenSource();
        var sending = pump.Sender.RunAsync(connection.Sender, stop.Token);
        var receiving = new ReplicationReceiver(new CutApplier(replica, _directory.File("state"))).RunAsync(connection.Receiver, stop.Token);

        var random = new Random(seed);
        for (var op = 0; op < 500; op++)
        {
            TreeChurn.Change(source, random);
            if (overflowMidway && op == 250)
            {
                // What the capture does after a queue overflow: the journaler compares the whole tree.
                pump.CompareWholeTree();
            }
        }

        // The barrier: once it returns, every change made before it is applied on the replica.
        try
        {
            await pump.BarrierAsync(Patience, TestContext.Current.CancellationToken, visible: true);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message} (sending: {sending.Status} {sending.Exception?.InnerException?.Message}; receiving: {receiving.Status} {receiving.Exception?.InnerException?.Message})");
        }

        var (paths, differences) = TreeSnapshot.Compare(source, replica);
        Assert.True(differences is null, differences);
        // Not an empty comparison. (How many records it took depends on how the changes fell into batches: a file made
        // and removed within one batch costs none.)
        Assert.True(paths > 20, $"the churn left {paths} paths ({journal.LastSequence} records)");

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => Task.WhenAll(sending, receiving));
    }
}
