using System.Security.Cryptography;
using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Capture;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>Several directories and single files in one journal (`paths:`): one sequence orders them all, nothing
/// beside them is journaled, walked or touched on the replica; over real loopback TCP, real trees, real
/// notifications.</summary>
public sealed class ScopeTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private static readonly string[] Members = ["srv/data", "etc/apphb", "etc/hosts"];
    private readonly TempDirectory _directory = new();
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Members_lead_from_the_root_and_nothing_beside_them_is_replicated_or_watched()
    {
        var scope = ReplicatedScope.Of("/", Members, path => path == "srv/data/cache" || path.StartsWith("srv/data/cache/", StringComparison.Ordinal));
        Assert.True(scope.Replicates("srv/data"));
        Assert.True(scope.Replicates("srv/data/orders/1"));
        Assert.True(scope.Replicates("etc/hosts"));
        Assert.False(scope.Replicates("etc/hosts.tmp"));
        Assert.False(scope.Replicates("etc/passwd"));
        Assert.False(scope.Replicates("srv/data/cache/x"));
        Assert.True(scope.Holds("srv/data/cache/x"));
        Assert.False(scope.Replicates("srv"));
        Assert.True(scope.Leads(string.Empty));
        Assert.True(scope.Leads("srv"));
        Assert.True(scope.Leads("etc"));
        Assert.False(scope.Leads("srv/data"));
        Assert.False(scope.Leads("sr"));
        Assert.True(scope.Watches("etc"));
        Assert.False(scope.Watches("usr"));
        Assert.False(scope.Watches("srv/other"));
        // The barrier's files: in the first member that is a directory then, or above the members (all watched).
        Assert.Equal(["srv/data", "etc/apphb", "etc/hosts", "srv", "etc", ""], scope.BarrierDirectories);
        Assert.True(scope.IsBarrierFile("srv/.apphb-barrier-7"));
        Assert.True(scope.IsBarrierFile("srv/data/.apphb-barrier-7"));
        Assert.False(scope.Replicates("srv/data/.apphb-barrier-7"));
        Assert.True(scope.IsBarrierFile(".apphb-barrier-7"));
        Assert.False(scope.IsBarrierFile("srv/data/db/.apphb-barrier-7"));
        Assert.False(scope.IsBarrierFile("srv/other/.apphb-barrier-7"));
        Assert.Equal("/srv/data, /etc/apphb, /etc/hosts", scope.ToString());

        var whole = ReplicatedScope.Whole("/srv/data/");
        Assert.Equal("/srv/data", whole.Root);
        Assert.True(whole.Replicates("anything/at/all"));
        Assert.False(whole.Leads(string.Empty));
        Assert.True(whole.IsBarrierFile(".apphb-barrier-7"));
        Assert.False(whole.IsBarrierFile("sub/.apphb-barrier-7"));

        Assert.Throws<ArgumentException>(() => ReplicatedScope.Of("/", ["srv/data", "srv/data/db"]));
        Assert.Throws<ArgumentException>(() => ReplicatedScope.Of("/", ["srv/data", "srv/data"]));
        Assert.Throws<ArgumentException>(() => ReplicatedScope.Of("/", ["../etc"]));
        Assert.Throws<ArgumentException>(() => ReplicatedScope.Of("/", []));
    }

    [Fact]
    public async Task Directories_and_single_files_replicate_in_one_journal_and_what_is_beside_them_stays_each_nodes_own()
    {
        var source = _directory.File("source");
        var replica = _directory.File("replica");
        foreach (var directory in new[] { "srv/data/db", "srv/other", "etc/apphb" })
        {
            Directory.CreateDirectory(Path.Combine(source, directory));
        }

        Write(source, "srv/data/db/orders", "order 1\n");
        Write(source, "etc/apphb/apphbd.yaml", "socket: /run/apphb.sock\n");
        Write(source, "etc/hosts", "10.0.0.1 alpha\n");
        Write(source, "etc/passwd", "the active's own\n");
        Write(source, "srv/other/x", "the active's own\n");
        Write(source, "top", "the active's own\n");
        Directory.CreateDirectory(Path.Combine(replica, "srv/other"));
        Directory.CreateDirectory(Path.Combine(replica, "etc"));
        Write(replica, "etc/passwd", "the standby's own\n");
        Write(replica, "srv/other/y", "the standby's own\n");

        var scope = ReplicatedScope.Of(source, Members);
        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = CapturePump.Start(new Journaler(scope, journal, new DataGeneration(3, 1)), journal);
        await using var connection = await Connected.OpenAsync(_key, _key);
        using var stop = new CancellationTokenSource();
        var sending = pump.Sender.RunAsync(connection.Sender, stop.Token);
        var receiving = new ReplicationReceiver(new CutApplier(ReplicatedScope.Of(replica, Members), _directory.File("state"))).RunAsync(connection.Receiver, stop.Token);
        async Task BarrierAsync()
        {
            try
            {
                await pump.BarrierAsync(Patience, TestContext.Current.CancellationToken, visible: true);
            }
            catch (TimeoutException e)
            {
                Assert.Fail($"{e.Message} (sending: {sending.Status} {sending.Exception?.InnerException?.Message}; receiving: {receiving.Status} {receiving.Exception?.InnerException?.Message})");
            }
        }

        // The first resync: the members, and nothing else, either way.
        await BarrierAsync();
        Assert.Equal("order 1\n", Read(replica, "srv/data/db/orders"));
        Assert.Equal("socket: /run/apphb.sock\n", Read(replica, "etc/apphb/apphbd.yaml"));
        Assert.Equal("10.0.0.1 alpha\n", Read(replica, "etc/hosts"));
        Assert.Equal("the standby's own\n", Read(replica, "etc/passwd"));
        Assert.Equal("the standby's own\n", Read(replica, "srv/other/y"));
        Assert.Null(Read(replica, "srv/other/x"));
        Assert.Null(Read(replica, "top"));

        // Changes in every member, a single file replaced as editors and package managers do (a temporary file beside
        // it renamed over it), and writes beside the members.
        Write(source, "srv/data/db/orders", "order 1\norder 2\n");
        Directory.CreateDirectory(Path.Combine(source, "etc/apphb/conf.d"));
        Write(source, "etc/apphb/conf.d/extra.yaml", "metrics: {}\n");
        Write(source, "etc/hosts.tmp", "10.0.0.1 alpha\n10.0.0.2 beta\n");
        File.Move(Path.Combine(source, "etc/hosts.tmp"), Path.Combine(source, "etc/hosts"), overwrite: true);
        Write(source, "etc/motd", "the active's own\n");
        Write(source, "srv/other/z", "the active's own\n");
        Directory.CreateDirectory(Path.Combine(source, "var/log"));
        await BarrierAsync();
        Assert.Equal("order 1\norder 2\n", Read(replica, "srv/data/db/orders"));
        Assert.Equal("metrics: {}\n", Read(replica, "etc/apphb/conf.d/extra.yaml"));
        Assert.Equal("10.0.0.1 alpha\n10.0.0.2 beta\n", Read(replica, "etc/hosts"));
        Assert.Null(Read(replica, "etc/hosts.tmp"));
        Assert.Null(Read(replica, "etc/motd"));
        Assert.Null(Read(replica, "srv/other/z"));
        Assert.False(Directory.Exists(Path.Combine(replica, "var")));

        // The directory above a member moved away and back: its members vanish from the replica and return (what the
        // standby has beside them stays).
        Directory.Move(Path.Combine(source, "srv"), Path.Combine(source, "srv.moved"));
        await BarrierAsync();
        Assert.False(Directory.Exists(Path.Combine(replica, "srv/data")));
        Assert.Equal("the standby's own\n", Read(replica, "srv/other/y"));
        Directory.Move(Path.Combine(source, "srv.moved"), Path.Combine(source, "srv"));
        Write(source, "srv/data/db/orders", "order 1\norder 2\norder 3\n");
        await BarrierAsync();
        Assert.Equal("order 1\norder 2\norder 3\n", Read(replica, "srv/data/db/orders"));

        // A single file deleted.
        File.Delete(Path.Combine(source, "etc/hosts"));
        await BarrierAsync();
        Assert.Null(Read(replica, "etc/hosts"));

        // One journal: every record names a member, in one sequence.
        Assert.All(journal.ReadAfter(0).Where(r => r is not CutRecord), r => Assert.True(scope.Replicates(r.Path), $"record {r.Sequence} names {r.Path}"));
        var verified = await pump.VerifyAsync(TestContext.Current.CancellationToken);
        Assert.Empty(verified.Differences);
        Assert.True(verified.Compared >= 6, $"{verified.Compared} entries compared");

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => Task.WhenAll(sending, receiving));
    }

    [Fact]
    public async Task A_replica_refuses_a_record_outside_its_own_paths_and_writes_nothing_there()
    {
        // The active replicates /etc/hosts too, this standby only the data: the records that name it are refused
        // (they could be a damaged or forged journal's), never applied beside the members.
        var source = _directory.File("source");
        var replica = _directory.File("replica");
        Directory.CreateDirectory(Path.Combine(source, "srv/data"));
        Directory.CreateDirectory(Path.Combine(source, "etc"));
        Directory.CreateDirectory(Path.Combine(replica, "etc"));
        Write(source, "srv/data/orders", "order 1\n");
        Write(source, "etc/hosts", "10.0.0.1 alpha\n");
        Write(replica, "etc/hosts", "the standby's own\n");

        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = CapturePump.Start(new Journaler(ReplicatedScope.Of(source, ["srv/data", "etc/hosts"]), journal, new DataGeneration(3, 1)), journal);
        await using var connection = await Connected.OpenAsync(_key, _key);
        using var stop = new CancellationTokenSource();
        var sending = pump.Sender.RunAsync(connection.Sender, stop.Token);
        var receiving = new ReplicationReceiver(new CutApplier(ReplicatedScope.Of(replica, ["srv/data"]), _directory.File("state"))).RunAsync(connection.Receiver, stop.Token);

        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() => receiving.WaitAsync(Patience, TestContext.Current.CancellationToken));
        Assert.Contains("names etc/hosts, outside what this node replicates", refused.Message, StringComparison.Ordinal);
        Assert.Equal("the standby's own\n", Read(replica, "etc/hosts"));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => sending);
    }

    private static void Write(string root, string relative, string text) => File.WriteAllText(Path.Combine(root, relative), text);

    private static string? Read(string root, string relative)
    {
        var path = Path.Combine(root, relative);
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }
}
