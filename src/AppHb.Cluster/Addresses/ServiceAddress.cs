using System.Net;
using AppHb.Linux.Network;

namespace AppHb.Cluster.Addresses;

/// <summary>A service address that follows the active node (apphbd.yaml(5), "cluster.service-ips").</summary>
public sealed record ServiceIp(IPAddress Address, int PrefixLength, string Interface, int AnnounceCount, TimeSpan AnnounceInterval)
{
    public override string ToString() => $"{Address}/{PrefixLength} on {Interface}";
}

/// <summary>One service IP on this node: taken (added, then announced <see cref="ServiceIp.AnnounceCount"/> times
/// <see cref="ServiceIp.AnnounceInterval"/> apart, so that a neighbour that missed one still hears it), released, and
/// looked at. Its sockets are opened in the network namespace of the thread that calls <see cref="Open"/>.</summary>
public sealed class ServiceAddress : IDisposable
{
    private readonly ServiceIp _ip;
    private readonly TimeProvider _time;
    private readonly LinkInterface _link;
    private readonly InterfaceAddressTable _table;
    private readonly NeighbourAnnouncer _announcer;

    private ServiceAddress(ServiceIp ip, TimeProvider time, LinkInterface link, InterfaceAddressTable table, NeighbourAnnouncer announcer)
    {
        _ip = ip;
        _time = time;
        _link = link;
        _table = table;
        _announcer = announcer;
    }

    public ServiceIp Ip => _ip;

    /// <exception cref="IOException">The interface does not exist, or the kernel refused a socket.</exception>
    public static ServiceAddress Open(ServiceIp ip, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(ip);
        ArgumentNullException.ThrowIfNull(time);
        var link = LinkInterface.Resolve(ip.Interface);
        var table = InterfaceAddressTable.Open();
        try
        {
            return new ServiceAddress(ip, time, link, table, NeighbourAnnouncer.Open(link));
        }
        catch
        {
            table.Dispose();
            throw;
        }
    }

    /// <summary>Adds the address (true: it was added now; false: this node held it already) and announces it. The
    /// address is usable when this returns; the announcements after the first continue until they are all sent.</summary>
    public async Task<bool> TakeAsync(CancellationToken cancellationToken)
    {
        var added = _table.Add(_link.Index, _ip.Address, _ip.PrefixLength);
        await AnnounceAsync(cancellationToken);
        return added;
    }

    /// <summary>Announces the address again (after a partition heals: the other side's neighbours may have learnt
    /// the peer's hardware address meanwhile).</summary>
    public async Task AnnounceAsync(CancellationToken cancellationToken)
    {
        for (var sent = 0; sent < Math.Max(1, _ip.AnnounceCount); sent++)
        {
            if (sent > 0)
            {
                await Task.Delay(_ip.AnnounceInterval, _time, cancellationToken);
            }

            _announcer.Announce(_ip.Address);
        }
    }

    /// <summary>Removes the address; false when this node did not hold it.</summary>
    public bool Release() => _table.Remove(_link.Index, _ip.Address, _ip.PrefixLength);

    /// <summary>Whether the interface holds the address now, as the kernel lists it.</summary>
    public bool IsHeld() => _table.List().Any(a => a.InterfaceIndex == _link.Index && a.Address.Equals(_ip.Address));

    public void Dispose()
    {
        _announcer.Dispose();
        _table.Dispose();
    }
}
