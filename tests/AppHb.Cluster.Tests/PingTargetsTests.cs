using System.Diagnostics;
using System.Net;
using AppHb.Cluster.Links;
using AppHb.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>The LAN check against real ICMP echo, from a node's namespace to a "gateway" namespace over a veth pair.</summary>
public sealed class PingTargetsTests : IAsyncLifetime
{
    private NetworkNamespace _node = null!;
    private NetworkNamespace _gateway = null!;

    public async ValueTask InitializeAsync()
    {
        _node = await NetworkNamespace.CreateAsync("apphb-pn");
        _gateway = await NetworkNamespace.CreateAsync("apphb-pg");
        await NetworkNamespace.ConnectAsync(_node, "lan0", "10.213.12.1/24", _gateway, "lan0", "10.213.12.254/24");
    }

    public ValueTask DisposeAsync()
    {
        _node.Dispose();
        _gateway.Dispose();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task The_LAN_is_reached_while_any_target_answers_and_not_once_none_can()
    {
        // One target that answers, one that does not exist on the segment.
        var targets = new PingTargets([IPAddress.Parse("10.213.12.99"), IPAddress.Parse("10.213.12.254")], TimeSpan.FromSeconds(1));
        Assert.True(await _node.Run(() => targets.AnyReachableAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult()));

        await _gateway.IpAsync("link", "set", "lan0", "down");
        var watch = Stopwatch.StartNew();
        Assert.False(await _node.Run(() => targets.AnyReachableAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult()));
        // Decided by the timeout, not left hanging.
        Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task No_targets_is_not_reaching_the_LAN()
    {
        var none = new PingTargets([], TimeSpan.FromSeconds(1));
        Assert.False(await none.AnyReachableAsync(TestContext.Current.CancellationToken));
    }
}
