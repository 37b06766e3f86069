using System.Diagnostics;
using System.Net;
using AppHb.Cluster.Addresses;
using AppHb.Testing;

namespace AppHb.Cluster.Tests;

/// <summary>Taking and releasing the service IP as a node does it, in a network namespace of the test's own, with a
/// neighbour in another that must learn where the address went.</summary>
public sealed class ServiceAddressTests : IAsyncLifetime
{
    private NetworkNamespace _node = null!;
    private NetworkNamespace _neighbour = null!;

    public async ValueTask InitializeAsync()
    {
        _node = await NetworkNamespace.CreateAsync("apphb-cn");
        _neighbour = await NetworkNamespace.CreateAsync("apphb-cb");
        await _neighbour.SysctlAsync("net.ipv4.conf.all.arp_accept", "1");
        await _neighbour.SysctlAsync("net.ipv4.conf.default.arp_accept", "1");
        await NetworkNamespace.ConnectAsync(_node, "lan0", "10.213.8.1/24", _neighbour, "lan0", "10.213.8.2/24");
    }

    public ValueTask DisposeAsync()
    {
        _node.Dispose();
        _neighbour.Dispose();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Taking_adds_and_announces_and_releasing_removes()
    {
        var ip = new ServiceIp(IPAddress.Parse("10.213.8.100"), 24, "lan0", AnnounceCount: 5, AnnounceInterval: TimeSpan.FromMilliseconds(100));
        using var address = await _node.Run(() => ServiceAddress.Open(ip, TimeProvider.System));
        Assert.False(address.IsHeld());

        var took = Stopwatch.StartNew();
        Assert.True(await address.TakeAsync(TestContext.Current.CancellationToken));
        // Five announcements, 100 ms apart: the last one leaves 400 ms after the first.
        Assert.InRange(took.Elapsed, TimeSpan.FromMilliseconds(390), TimeSpan.FromSeconds(10));
        Assert.True(address.IsHeld());
        Assert.Contains("10.213.8.100/24", await _node.IpAsync("-o", "address", "show", "dev", "lan0"), StringComparison.Ordinal);
        var mac = (await _node.IpAsync("-o", "link", "show", "dev", "lan0")).Split("link/ether ")[1][..17];
        Assert.Contains(mac, await _neighbour.IpAsync("neigh", "show", "10.213.8.100", "dev", "lan0"), StringComparison.Ordinal);

        // Held already (a node that took it before a restart): said, and announced all the same.
        Assert.False(await address.TakeAsync(TestContext.Current.CancellationToken));

        Assert.True(address.Release());
        Assert.False(address.IsHeld());
        Assert.False(address.Release());
        Assert.DoesNotContain("10.213.8.100", await _node.IpAsync("-o", "address", "show", "dev", "lan0"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_interface_is_named()
    {
        var ip = new ServiceIp(IPAddress.Parse("10.213.8.100"), 24, "nosuch0", 1, TimeSpan.Zero);
        var e = await Assert.ThrowsAsync<IOException>(() => _node.Run(() => ServiceAddress.Open(ip, TimeProvider.System)));
        Assert.Contains("\"nosuch0\" does not exist", e.Message, StringComparison.Ordinal);
    }
}
