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
            Churn(source, random);
            if (overflowMidway && op == 250)
            {
                // What the capture does after a queue overflow: the journaler compares the whole tree.
                pump.CompareWholeTree();
            }
        }

        // The barrier: once it returns, every change made before it is applied on the replica.
        try
        {
            await pump.BarrierAsync(Patience, TestContext.Current.CancellationToken);
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

    /// <summary>One random change, as an application would make it.</summary>
    private static void Churn(string root, Random random)
    {
        // Regular files only: a symlink may dangle once its target moved.
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => new FileInfo(f).LinkTarget is null).ToList();
        var directories = Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).ToList();
        string AnyDirectory() => directories.Count == 0 || random.Next(4) == 0 ? root : directories[random.Next(directories.Count)];
        string NewName() => $"n{random.Next(1_000_000)}";
        byte[] Bytes(int max)
        {
            var bytes = new byte[random.Next(max)];
            random.NextBytes(bytes);
            return bytes;
        }

        switch (random.Next(10))
        {
            case 0 or 1:
                File.WriteAllBytes(Path.Combine(AnyDirectory(), NewName()), Bytes(40_000));
                break;
            case 2 when files.Count > 0:
                using (var append = new FileStream(files[random.Next(files.Count)], FileMode.Append))
                {
                    append.Write(Bytes(10_000));
                }

                break;
            case 3 when files.Count > 0:
                using (var overwrite = new FileStream(files[random.Next(files.Count)], FileMode.Open))
                {
                    overwrite.Position = random.Next((int)Math.Max(1, overwrite.Length));
                    overwrite.Write(Bytes(6_000));
                }

                break;
            case 4 when files.Count > 0:
                File.Move(files[random.Next(files.Count)], Path.Combine(AnyDirectory(), NewName()), overwrite: true);
                break;
            case 5 when files.Count > 0:
                File.Delete(files[random.Next(files.Count)]);
                break;
            case 6:
                var tree = Path.Combine(AnyDirectory(), NewName());
                for (var depth = random.Next(1, 4); depth > 0; depth--)
                {
                    tree = Path.Combine(tree, NewName());
                }

                Directory.CreateDirectory(tree);
                File.WriteAllBytes(Path.Combine(tree, NewName()), Bytes(20_000));
                break;
            case 7 when directories.Count > 0:
                var moved = directories[random.Next(directories.Count)];
                var into = AnyDirectory();
                if (!(into + "/").StartsWith(moved + "/", StringComparison.Ordinal))
                {
                    Directory.Move(moved, Path.Combine(into, NewName()));
                }

                break;
            case 8 when directories.Count > 3:
                Directory.Delete(directories[random.Next(directories.Count)], recursive: true);
                break;
            case 9 when files.Count > 0:
                File.CreateSymbolicLink(Path.Combine(AnyDirectory(), NewName()), Path.GetRelativePath(root, files[random.Next(files.Count)]));
                break;
        }
    }
}
