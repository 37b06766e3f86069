using AppHb.Cluster.State;
using AppHb.Core.Cluster;
using AppHb.Testing;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>The node's persisted state: boot epochs never reused, generations kept, a damaged file refused by name.</summary>
public sealed class NodeStateStoreTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));

    private string StatePath => Path.Combine(_directory.Path, "cluster.state");

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Every_boot_gets_a_new_epoch_saved_before_it_is_used()
    {
        var store = new NodeStateStore(StatePath);
        Assert.Null(store.Load());

        var first = store.Boot(_time);
        Assert.Equal(1_700_000_000UL, first.BootEpoch);
        Assert.Equal([DataGeneration.None], first.Generations);
        Assert.Equal(first, store.Load());

        // Restarted within the same second, and again with the clock set back: the epoch still only grows.
        Assert.Equal(1_700_000_001UL, store.Boot(_time).BootEpoch);
        _time.AdjustTime(DateTimeOffset.FromUnixTimeSeconds(1_600_000_000));
        Assert.Equal(1_700_000_002UL, store.Boot(_time).BootEpoch);
    }

    [Fact]
    public void Generations_and_the_peer_epoch_survive_a_restart()
    {
        var store = new NodeStateStore(StatePath);
        var booted = store.Boot(_time);
        var changed = booted with { PeerEpoch = 1_699_999_000, Generations = [new DataGeneration(3, 1), new DataGeneration(2, 2), new DataGeneration(1, 1)] };
        store.Save(changed);

        var again = new NodeStateStore(StatePath).Boot(_time);
        Assert.Equal(changed.Generations, again.Generations);
        Assert.Equal(changed.PeerEpoch, again.PeerEpoch);
        Assert.Equal(booted.BootEpoch + 1, again.BootEpoch);
        // Only the file itself is left: the temporary one was renamed over it.
        Assert.Equal(["cluster.state"], Directory.GetFiles(_directory.Path).Select(Path.GetFileName));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(StatePath));
    }

    [Theory]
    [InlineData("version 1\nboot-epoch 5\npeer-epoch 4\ngenerations 3@1 2x2\n", ":4: \"2x2\" is not a generation")]
    [InlineData("version 2\n", ":1: version 2 is not one this apphbd reads")]
    [InlineData("version 1\nboot-epoch 5\ngenerations 3@1\n", ":3: boot-epoch, peer-epoch and generations are all required")]
    [InlineData("version 1\nboot-epoch -5\n", ":2: \"boot-epoch -5\" is not a boot-epoch")]
    public void A_damaged_file_is_refused_by_file_and_line(string content, string expected)
    {
        File.WriteAllText(StatePath, content);
        var store = new NodeStateStore(StatePath);

        var e = Assert.Throws<InvalidDataException>(store.Load);
        Assert.Equal(StatePath + expected, e.Message[..(StatePath.Length + expected.Length)]);
        // Never reset behind the operator's back.
        Assert.Throws<InvalidDataException>(() => store.Boot(_time));
        Assert.Equal(content, File.ReadAllText(StatePath));
    }
}
