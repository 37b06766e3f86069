using AppHb.Cluster.Hosting;
using AppHb.Daemon.Cluster;
using Microsoft.Extensions.Time.Testing;

namespace AppHb.Daemon.Tests;

/// <summary>The group's start on a node that becomes active waits for its replica to stop being written; a stop
/// meanwhile wins; a wait that never ends is given up loudly.</summary>
public sealed class GatedPairGroupTests
{
    private sealed class CountingGroup : IPairGroup
    {
        public int Starts { get; private set; }

        public int Stops { get; private set; }

        public bool IsRunning => Starts > Stops;

        public void Start() => Starts++;

        public Task StopAsync(CancellationToken cancellationToken)
        {
            Stops++;
            return Task.CompletedTask;
        }
    }

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _time = new();
    private readonly CountingGroup _group = new();
    private readonly List<string> _unwaited = [];
    private TaskCompletionSource _replicaStopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private GatedPairGroup Gated(bool gate = true) =>
        new(_group, () => gate ? _ => _replicaStopped.Task : null, Patience, _time, _unwaited.Add);

    private static async Task SettleAsync()
    {
        // The start that waited runs on the thread pool once its wait ends.
        for (var i = 0; i < 50; i++)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public void Without_anything_to_wait_for_the_group_starts_at_once()
    {
        var gated = Gated(gate: false);

        gated.Start();

        Assert.Equal(1, _group.Starts);
        Assert.True(gated.IsRunning);
    }

    [Fact]
    public async Task The_group_starts_only_once_the_replica_stopped()
    {
        var gated = Gated();

        gated.Start();
        await SettleAsync();
        Assert.Equal(0, _group.Starts);

        _replicaStopped.SetResult();
        Assert.True(await AppHb.Testing.Polling.UntilAsync(() => Task.FromResult(_group.Starts == 1), TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Empty(_unwaited);
    }

    [Fact]
    public async Task A_stop_while_the_start_waits_means_it_never_starts()
    {
        var gated = Gated();

        gated.Start();
        await gated.StopAsync(CancellationToken.None);
        _replicaStopped.SetResult();
        await SettleAsync();

        Assert.Equal(0, _group.Starts);
        Assert.Equal(1, _group.Stops);
        Assert.False(gated.IsRunning);

        // Active again later: the new start goes through.
        _replicaStopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
        _replicaStopped.SetResult();
        gated.Start();
        Assert.True(await AppHb.Testing.Polling.UntilAsync(() => Task.FromResult(_group.Starts == 1), TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [Fact]
    public async Task A_replica_that_never_stops_delays_the_group_by_the_patience_only_and_says_so()
    {
        var gated = Gated();

        gated.Start();
        await SettleAsync();
        _time.Advance(Patience - TimeSpan.FromSeconds(1));
        await SettleAsync();
        Assert.Equal(0, _group.Starts);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await AppHb.Testing.Polling.UntilAsync(() => Task.FromResult(_group.Starts == 1), TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Equal(["still not done after 30 s"], _unwaited);
    }
}
