using System.Diagnostics;
using System.Net;
using AppHb.Linux.Network;
using AppHb.Testing;

namespace AppHb.Linux.Tests;

/// <summary>The service IP's kernel side, in two network namespaces joined by a veth pair: node A takes the address
/// through rtnetlink and announces it; node B's neighbour table shows that the announcement crossed the wire.</summary>
public sealed class ServiceAddressTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private NetworkNamespace _a = null!;
    private NetworkNamespace _b = null!;

    public async ValueTask InitializeAsync()
    {
        _a = await NetworkNamespace.CreateAsync("apphb-sa");
        _b = await NetworkNamespace.CreateAsync("apphb-sb");
        // B learns neighbours from announcements it did not ask for (by default it only refreshes entries it has).
        await _b.SysctlAsync("net.ipv4.conf.all.arp_accept", "1");
        await _b.SysctlAsync("net.ipv4.conf.default.arp_accept", "1");
        // (IPv6: a node learns an address it never asked about only as a router, which is what B plays here.)
        await _b.SysctlAsync("net.ipv6.conf.all.forwarding", "1");
        await _b.SysctlAsync("net.ipv6.conf.all.accept_untracked_na", "1");
        await _b.SysctlAsync("net.ipv6.conf.default.accept_untracked_na", "1");
        await NetworkNamespace.ConnectAsync(_a, "svc0", "10.213.7.1/24", _b, "peer0", "10.213.7.2/24");
        await _a.IpAsync("-6", "address", "add", "fd00:213:7::1/64", "dev", "svc0");
    }

    public ValueTask DisposeAsync()
    {
        _a.Dispose();
        _b.Dispose();
        return ValueTask.CompletedTask;
    }

    [Theory]
    [InlineData("10.213.7.100", 24)]
    [InlineData("fd00:213:7::100", 64)]
    public async Task An_address_is_taken_announced_and_released(string text, int prefix)
    {
        var address = IPAddress.Parse(text);
        var link = await _a.Run(() => LinkInterface.Resolve("svc0"));
        var (added, addedAgain, listed) = await _a.Run(() =>
        {
            using var table = InterfaceAddressTable.Open();
            var first = table.Add(link.Index, address, prefix);
            var second = table.Add(link.Index, address, prefix);
            var list = table.List();
            return (first, second, list);
        });

        Assert.True(added);
        Assert.False(addedAgain);
        Assert.Contains(new InterfaceAddress(link.Index, address, prefix), listed);
        var shown = await _a.IpAsync("-o", "address", "show", "dev", "svc0");
        Assert.Contains($"{text}/{prefix}", shown, StringComparison.Ordinal);
        // Usable at once: no duplicate address detection holding an IPv6 address tentative.
        Assert.DoesNotContain("tentative", shown.Split('\n').Single(l => l.Contains(text, StringComparison.Ordinal)), StringComparison.Ordinal);

        // B heard the announcement: its neighbour entry for the address names A's hardware address.
        var mac = string.Join(':', link.HardwareAddress.GetAddressBytes().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
        // Announced every 100 ms until heard, as the service IP is (a link just brought up may drop the first).
        using var announcer = await _a.Run(() => NeighbourAnnouncer.Open(link));
        var waited = Stopwatch.StartNew();
        string neighbour;
        do
        {
            announcer.Announce(address);
            await Task.Delay(100, TestContext.Current.CancellationToken);
            neighbour = await _b.IpAsync("neigh", "show", text, "dev", "peer0");
        }
        while (!neighbour.Contains(mac, StringComparison.Ordinal) && waited.Elapsed < Bound);

        Assert.Contains(mac, neighbour, StringComparison.Ordinal);

        var (removed, removedAgain) = await _a.Run(() =>
        {
            using var table = InterfaceAddressTable.Open();
            return (table.Remove(link.Index, address, prefix), table.Remove(link.Index, address, prefix));
        });
        Assert.True(removed);
        Assert.False(removedAgain);
        Assert.DoesNotContain($"{text}/", await _a.IpAsync("-o", "address", "show", "dev", "svc0"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refusals_name_what_was_wrong()
    {
        var missing = await Assert.ThrowsAsync<IOException>(() => _a.Run(() => LinkInterface.Resolve("nosuch0")));
        Assert.Contains("\"nosuch0\" does not exist", missing.Message, StringComparison.Ordinal);

        var refused = await Assert.ThrowsAsync<IOException>(() => _a.Run(() =>
        {
            using var table = InterfaceAddressTable.Open();
            return table.Add(9999, IPAddress.Parse("10.213.7.100"), 24);
        }));
        Assert.Contains("cannot add 10.213.7.100/24 on interface index 9999", refused.Message, StringComparison.Ordinal);
    }
}
