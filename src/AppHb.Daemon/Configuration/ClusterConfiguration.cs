using System.Globalization;
using System.Net;
using AppHb.Cluster.Addresses;
using AppHb.Cluster.Fencing;
using AppHb.Cluster.Links;
using AppHb.Core.Cluster;
using AppHb.Core.Supervision;
using AppHb.Linux.Accounts;

namespace AppHb.Daemon.Configuration;

/// <summary>The pair (apphbd.yaml(5), "cluster"): absent on a single node.</summary>
public sealed record ClusterOptions(
    string Node,
    ushort NodeId,
    string Peer,
    ushort PeerId,
    uint ClusterId,
    string KeyFile,
    ClusterTimings Timings,
    bool Preferred,
    IReadOnlyList<ClusterLink> Links,
    IReadOnlyList<IPAddress> PingTargets,
    IReadOnlyList<ServiceIp> ServiceIps,
    IReadOnlyList<string> Group,
    IReadOnlyList<FenceMethod> Fence,
    string StateFile = ClusterOptions.DefaultStateFile,
    string FenceAgentDirectory = FenceDriver.AgentDirectory)
{
    /// <summary>Where a node keeps its boot epochs and data generations unless <c>cluster.state-file</c> says.</summary>
    public const string DefaultStateFile = "/var/lib/apphb/pair.state";

    /// <summary>Everything, as text: records compare lists by reference, a reload compares this.</summary>
    public string Canonical() => string.Join('|',
        Node, NodeId, Peer, PeerId, ClusterId, KeyFile, Timings, Preferred,
        string.Join(',', Links), string.Join(',', PingTargets), string.Join(',', ServiceIps), string.Join(',', Group),
        string.Join(',', Fence.Select(f => $"{f.Kind}:{f.Agent}:{string.Join(';', f.Options)}:{f.Timeout}")), StateFile, FenceAgentDirectory);
}

/// <summary>Reads and checks the <c>cluster:</c> section. Every error names file:line:column and key.</summary>
internal static class ClusterConfiguration
{
    private static readonly Dictionary<string, LinkKind> Kinds = new(StringComparer.Ordinal)
    {
        ["dedicated"] = LinkKind.Dedicated,
        ["lan"] = LinkKind.Lan,
    };

    private static readonly Dictionary<string, bool> Failbacks = new(StringComparer.Ordinal)
    {
        ["manual"] = false,
        ["auto"] = true,
    };

    public static ClusterOptions? Read(YamlSection root, IReadOnlyList<ServiceDefinition> services)
    {
        if (!root.IsSet("cluster"))
        {
            return null;
        }

        var section = root.Child("cluster");
        section.RejectUnknownKeys("node", "node-id", "peer", "peer-id", "cluster-id", "key-file", "keepalive", "warntime", "deadtime",
            "initdead", "link-hold", "fence-delay", "fence-retry", "preferred", "failback", "failback-delay", "links", "ping",
            "service-ips", "group", "fence", "state-file", "fence-agent-directory");
        var node = section.String("node", Name);
        var peer = section.String("peer", Name);
        if (node == peer)
        {
            section.Error("peer", $"must differ from node ({node})");
        }

        var nodeId = (ushort)section.Integer("node-id", 1, ushort.MaxValue);
        var peerId = (ushort)section.Integer("peer-id", 1, ushort.MaxValue);
        if (nodeId == peerId)
        {
            section.Error("peer-id", $"must differ from node-id ({nodeId})");
        }

        var clusterId = (uint)section.Integer("cluster-id", 1, int.MaxValue);
        var keyFile = section.String("key-file", KeyFileProblem);

        var d = ClusterTimings.Default;
        var keepalive = Duration(section, "keepalive", d.Keepalive, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(1));
        var warntime = Duration(section, "warntime", d.WarnTime, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(10));
        var deadtime = Duration(section, "deadtime", d.DeadTime, TimeSpan.FromMilliseconds(20), TimeSpan.FromMinutes(10));
        var timings = new ClusterTimings(
            keepalive,
            warntime,
            deadtime,
            Duration(section, "initdead", d.InitDead, TimeSpan.FromMilliseconds(20), TimeSpan.FromHours(1)),
            Duration(section, "link-hold", d.LinkHold, TimeSpan.Zero, TimeSpan.FromHours(1)),
            Duration(section, "fence-delay", ClusterTimings.DefaultFenceDelay(keepalive, deadtime), TimeSpan.Zero, TimeSpan.FromMinutes(10)),
            Duration(section, "fence-retry", d.FenceRetry, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1)),
            section.IsSet("failback") && section.Choice("failback", Failbacks)
                ? Duration(section, "failback-delay", TimeSpan.FromMinutes(5), TimeSpan.Zero, TimeSpan.FromDays(1))
                : null);
        if (section.IsSet("failback-delay") && timings.FailbackDelay is null)
        {
            section.Error("failback-delay", "only with failback: auto");
        }

        if (timings.Validate() is { } invalid)
        {
            section.Error(invalid.StartsWith("deadtime", StringComparison.Ordinal) ? "deadtime"
                : invalid.StartsWith("warntime", StringComparison.Ordinal) ? "warntime"
                : invalid.StartsWith("initdead", StringComparison.Ordinal) ? "initdead"
                : invalid.StartsWith("fence-delay", StringComparison.Ordinal) ? "fence-delay" : "keepalive", invalid);
        }

        var preferred = section.OptionalString("preferred");
        if (preferred is not null && preferred != node && preferred != peer)
        {
            section.Error("preferred", $"\"{preferred}\" is neither this node ({node}) nor the peer ({peer})");
        }

        var links = new List<ClusterLink>();
        foreach (var link in section.MappingList("links"))
        {
            link.RejectUnknownKeys("name", "kind", "interface", "local", "peer", "port");
            var name = link.String("name", Name);
            if (links.Any(l => l.Name == name))
            {
                link.Error("name", $"\"{name}\" names two links");
            }

            links.Add(new ClusterLink(name, link.Choice("kind", Kinds), link.String("interface", Interface),
                Address(link, "local"), Address(link, "peer"), link.Integer("port", 1, 65535)));
        }

        if (!links.Any(l => l.Kind == LinkKind.Dedicated) || !links.Any(l => l.Kind == LinkKind.Lan))
        {
            section.Error("links", "a pair needs at least one dedicated link (the crossover cable) and one lan link, to tell a broken link from a dead peer");
        }

        var ping = new List<IPAddress>();
        foreach (var target in section.OptionalStringList("ping") ?? [])
        {
            if (IPAddress.TryParse(target, out var address))
            {
                ping.Add(address);
            }
            else
            {
                section.Error("ping", $"\"{target}\" is not an IP address");
            }
        }

        if (ping.Count == 0)
        {
            section.Error("ping", "at least one ping target on the LAN (the gateway, say) is needed to tell a LAN fault on this node from one on the peer");
        }

        var serviceIps = new List<ServiceIp>();
        foreach (var ip in section.MappingList("service-ips"))
        {
            ip.RejectUnknownKeys("address", "interface", "announce-count", "announce-interval");
            var text = ip.String("address");
            var slash = text.IndexOf('/', StringComparison.Ordinal);
            IPAddress? address = null;
            var prefix = -1;
            if (slash < 0 || !IPAddress.TryParse(text[..slash], out address)
                || !int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix)
                || prefix > (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128))
            {
                ip.Error("address", $"\"{text}\" is not an address with its prefix length, like 192.168.1.10/24 or 2001:db8::10/64");
            }

            serviceIps.Add(new ServiceIp(address ?? IPAddress.None, prefix, ip.String("interface", Interface),
                ip.IsSet("announce-count") ? ip.Integer("announce-count", 0, 100) : 5,
                Duration(ip, "announce-interval", TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(10))));
        }

        var group = section.OptionalStringList("group") ?? [];
        foreach (var service in group)
        {
            if (!services.Any(s => s.Name == service))
            {
                section.Error("group", $"\"{service}\" is not a service of this configuration (services: {string.Join(", ", services.Select(s => s.Name))})");
            }
        }

        // A node service waiting for a group service would never start on the standby.
        foreach (var service in services.Where(s => !group.Contains(s.Name)))
        {
            if (service.Requires.FirstOrDefault(group.Contains) is { } required)
            {
                section.Error("group", $"service \"{service.Name}\" runs on both nodes but requires \"{required}\", which runs on the active node only: put \"{service.Name}\" in the group too, or drop the requirement");
            }
        }

        var fence = new List<FenceMethod>();
        foreach (var method in section.MappingList("fence"))
        {
            method.RejectUnknownKeys("method", "agent", "options", "timeout");
            var kind = method.String("method", m => m is "agent" or "peer-link" ? null : "must be agent (a ClusterLabs fence agent) or peer-link");
            var agent = method.OptionalString("agent");
            if (kind == "agent" && (agent is null || !agent.StartsWith("fence_", StringComparison.Ordinal) || agent.Contains('/', StringComparison.Ordinal)))
            {
                method.Error("agent", $"required for method agent: the fence agent's name, like fence_ipmilan (looked up in {FenceDriver.AgentDirectory})");
            }
            else if (kind == "peer-link" && agent is not null)
            {
                method.Error("agent", "only for method agent");
            }

            fence.Add(new FenceMethod(kind, agent, method.IsSet("options") ? method.StringMap("options") : [],
                Duration(method, "timeout", TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10))));
        }

        if (fence.Count == 0)
        {
            section.Error("fence", "at least one fence method: a node never becomes active without a confirmed fence of its peer or its confirmed release");
        }

        var stateFile = section.OptionalString("state-file") ?? ClusterOptions.DefaultStateFile;
        if (!Path.IsPathRooted(stateFile))
        {
            section.Error("state-file", $"\"{stateFile}\" is not an absolute path");
        }

        // Where the fence agents are installed: /usr/sbin as the fence-agents package puts them, unless said otherwise.
        var agentDirectory = section.OptionalString("fence-agent-directory") ?? FenceDriver.AgentDirectory;
        if (!Directory.Exists(agentDirectory))
        {
            section.Error("fence-agent-directory", $"\"{agentDirectory}\" is not a directory");
        }

        return new ClusterOptions(node, nodeId, peer, peerId, clusterId, keyFile, timings, preferred == node, links, ping, serviceIps, group, fence,
            stateFile, agentDirectory);
    }

    /// <summary>A duration the user may leave out (the cluster section has no embedded defaults: its absence means a
    /// single node).</summary>
    private static TimeSpan Duration(YamlSection section, string key, TimeSpan fallback, TimeSpan min, TimeSpan max) =>
        section.IsSet(key) ? section.Duration(key, min, max) : fallback;

    private static string? Name(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            ? null
            : "must be 1 to 64 letters, digits, '-', '_' or '.'";

    private static string? Interface(string name) =>
        name.Length is > 0 and < 16 && !name.Contains('/', StringComparison.Ordinal) && !name.Any(char.IsWhiteSpace)
            ? null
            : "must be a network interface name (1 to 15 characters, no '/' or space)";

    private static IPAddress Address(YamlSection section, string key)
    {
        var text = section.String(key);
        if (IPAddress.TryParse(text, out var address))
        {
            return address;
        }

        section.Error(key, $"\"{text}\" is not an IP address");
        return IPAddress.None;
    }

    /// <summary>The shared key authenticates every datagram: only root or apphbd's own user may read it.</summary>
    private static string? KeyFileProblem(string path)
    {
        if (!path.StartsWith('/'))
        {
            return "must be an absolute path";
        }

        (uint Uid, uint Gid, UnixFileMode Mode) owner;
        try
        {
            owner = UnixAccounts.OwnerOf(path);
        }
        catch (IOException e)
        {
            return $"cannot be read: {e.Message}";
        }

        if ((owner.Mode & (UnixFileMode)0x3F) != 0)
        {
            return $"{path} has mode {Convert.ToString((int)owner.Mode, 8)}: it must be 0600 (no access for group or others)";
        }

        if (owner.Uid != 0 && owner.Uid != UnixAccounts.EffectiveUserId)
        {
            return $"{path} is owned by uid {owner.Uid}: it must belong to root or to apphbd's own user";
        }

        try
        {
            return new FileInfo(path).Length < 32 ? "holds fewer than 32 bytes: use 32 random bytes or more (head -c 32 /dev/urandom)" : null;
        }
        catch (IOException e)
        {
            return $"cannot be read: {e.Message}";
        }
    }
}
