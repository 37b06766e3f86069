using System.Text.RegularExpressions;

namespace AppHb.Testing;

/// <summary>Two nodes of a pair, each a network namespace of its own, joined by a dedicated link (a veth pair,
/// <c>ded0</c>, 10.216.1.0/24) and a LAN (each node's <c>lan0</c> on a bridge in a third namespace, 10.216.2.0/24, whose
/// address .254 is the ping target and which is also the client that asks who answers on the service IP). Each node
/// runs a real apphbd; the group's service answers TCP on port 8080 with its node's name; the fence agent
/// <c>fence_apphb_netns</c> powers a node's namespace off. The faults the pair must survive are methods here, so the
/// suite's tests and the partition checker (the benchmarks) cut and heal the same way.</summary>
public sealed partial class PairRig : IAsyncDisposable
{
    public const string ServiceIp = "10.216.2.100";
    private const string Key = "0123456789abcdef0123456789abcdef";
    private readonly TempDirectory _directory = new();
    private readonly DaemonProcess?[] _daemons = new DaemonProcess?[3];
    private readonly List<DaemonProcess> _started = [];

    private PairRig(NetworkNamespace a, NetworkNamespace b, NetworkNamespace gateway)
    {
        A = a;
        B = b;
        Gateway = gateway;
        AnswerProgram = ["/usr/bin/python3", Path.Combine(Directory, "answer.py")];
    }

    public NetworkNamespace A { get; }

    public NetworkNamespace B { get; }

    /// <summary>The LAN's switch, gateway (the ping target) and client.</summary>
    public NetworkNamespace Gateway { get; }

    public string Directory => _directory.Path;

    /// <summary>Node 1's or node 2's namespace.</summary>
    public NetworkNamespace Node(int me) => me == 1 ? A : B;

    /// <summary>The node's apphbd as last started, or null.</summary>
    public DaemonProcess? Daemon(int me) => _daemons[me];

    public static async Task<PairRig> CreateAsync()
    {
        var a = await NetworkNamespace.CreateAsync("apphb-na");
        var b = await NetworkNamespace.CreateAsync("apphb-nb");
        var gateway = await NetworkNamespace.CreateAsync("apphb-ng");
        var rig = new PairRig(a, b, gateway);
        try
        {
            await rig.BuildAsync();
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    private async Task BuildAsync()
    {
        var agents = Path.Combine(Directory, "agents");
        System.IO.Directory.CreateDirectory(agents);
        TestFenceAgents.Install(agents, "fence_apphb_netns");
        var key = Path.Combine(Directory, "cluster.key");
        await File.WriteAllTextAsync(key, Key);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await File.WriteAllTextAsync(Path.Combine(Directory, "answer.py"), """
            import socket, sys
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("0.0.0.0", 8080))
            server.listen(16)
            while True:
                connection, _ = server.accept()
                connection.sendall((sys.argv[1] + "\n").encode())
                connection.close()
            """);
        await NetworkNamespace.ConnectAsync(A, "ded0", "10.216.1.1/24", B, "ded0", "10.216.1.2/24");
        await Gateway.IpAsync("link", "add", "br0", "type", "bridge");
        await Gateway.IpAsync("address", "add", "10.216.2.254/24", "dev", "br0");
        await Gateway.IpAsync("link", "set", "br0", "up");
        foreach (var me in new[] { 1, 2 })
        {
            var node = Node(me);
            var (code, output) = await ProcessRunner.RunAsync("ip", "link", "add", "lan0", "netns", node.Name, "type", "veth", "peer", "name", Port(me), "netns", Gateway.Name);
            if (code != 0)
            {
                throw new InvalidOperationException($"cannot plug node{me} into the LAN: {output}");
            }

            await Gateway.IpAsync("link", "set", Port(me), "master", "br0");
            await Gateway.IpAsync("link", "set", Port(me), "up");
            await node.IpAsync("address", "add", $"10.216.2.{me}/24", "dev", "lan0");
            await node.IpAsync("link", "set", "lan0", "up");
        }
    }

    /// <summary>The node's port on the LAN's switch.</summary>
    public static string Port(int me) => me == 1 ? "pa" : "pb";

    /// <summary>The service's program and its arguments before the node's name: answer.py under python3 unless a
    /// benchmark sets its own (a compiled one starts in ~1 ms where Python's interpreter takes ~35 ms).</summary>
    public IReadOnlyList<string> AnswerProgram { get; set; }

    /// <summary>The group's service: answers every TCP connection on port 8080 with its node's name.</summary>
    public string Answering(int me) => $"command: [{string.Join(", ", AnswerProgram)}, node{me}]";

    /// <summary>The fence list's items for <c>cluster.fence</c>: the first line as it follows "- ", the rest indented
    /// for the list's place in <see cref="Config"/>.</summary>
    public static string AgentFence(NetworkNamespace peer) =>
        $"- method: agent\n      agent: fence_apphb_netns\n      options:\n        netns: {peer.Name}\n      timeout: 20s";

    /// <summary>The peer-link method first, then the agent.</summary>
    public static string PeerLinkThenAgentFence(NetworkNamespace peer) =>
        $"- method: peer-link\n      timeout: 10s\n    {AgentFence(peer)}";

    /// <summary>Node <paramref name="me"/>'s apphbd.yaml (its services and its cluster section).</summary>
    /// <param name="group">The group's services: by default the app, which then runs on the active node only; empty,
    /// the app runs on both nodes and only the address moves.</param>
    /// <param name="extra">More top-level sections (e.g. <c>replication:</c>).</param>
    public string Config(int me, string app, string? fence = null, string fenceDelay = "200ms", string keepalive = "100ms",
        string warntime = "300ms", string deadtime = "1s", string initdead = "10s", string group = "[app]", string linkHold = "5s", string extra = "") => $"""
        services:
          app:
            {app}
        cluster:
          node: node{me}
          node-id: {me}
          peer: node{3 - me}
          peer-id: {3 - me}
          cluster-id: 77
          key-file: {Path.Combine(Directory, "cluster.key")}
          state-file: {Path.Combine(Directory, $"node{me}.state")}
          keepalive: {keepalive}
          warntime: {warntime}
          deadtime: {deadtime}
          initdead: {initdead}
          fence-delay: {fenceDelay}
          link-hold: {linkHold}
          preferred: node1
          ping: [10.216.2.254]
          links:
            - name: cross
              kind: dedicated
              interface: ded0
              local: 10.216.1.{me}
              peer: 10.216.1.{3 - me}
              port: 7408
            - name: lan
              kind: lan
              interface: lan0
              local: 10.216.2.{me}
              peer: 10.216.2.{3 - me}
              port: 7408
          service-ips:
            - address: {ServiceIp}/24
              interface: lan0
              announce-count: 2
              announce-interval: 50ms
          group: {group}
          fence-agent-directory: {Path.Combine(Directory, "agents")}
          fence:
            {fence ?? AgentFence(Node(3 - me))}
        {extra}
        """;

    /// <summary>Starts node <paramref name="me"/>'s apphbd with <see cref="Config"/>.</summary>
    public async Task<DaemonProcess> StartAsync(int me, string config)
    {
        var daemon = await DaemonProcess.StartAsync(config, directory: new TempDirectory(), networkNamespace: Node(me).Name);
        _daemons[me] = daemon;
        _started.Add(daemon);
        return daemon;
    }

    /// <summary>The node's /metrics, fetched from inside its namespace (where its apphbd listens).</summary>
    /// <exception cref="InvalidOperationException">The scrape failed (its output says why).</exception>
    public async Task<string> ScrapeAsync(int me)
    {
        var daemon = _daemons[me] ?? throw new InvalidOperationException($"node{me}'s apphbd was never started");
        // The last start's: a node restarted listens on a new port.
        var line = daemon.Lines.LastOrDefault(l => l.Contains("Prometheus scrapes", StringComparison.Ordinal))
            ?? await daemon.WaitForLineAsync("Prometheus scrapes", TimeSpan.FromSeconds(10));
        var url = System.Text.RegularExpressions.Regex.Match(line, @"http://\S+/metrics").Value;
        var (code, output) = await ProcessRunner.RunAsync("ip", "netns", "exec", Node(me).Name, "curl", "-sS", "--max-time", "10", url);
        return code == 0 ? output : throw new InvalidOperationException($"scraping node{me} failed: {output}");
    }

    /// <summary>Whether the service IP is on the node's LAN interface and that interface is up.</summary>
    public async Task<bool> HoldsServiceIpAsync(int me) =>
        (await Node(me).IpAsync("-o", "address", "show", "dev", "lan0", "up")).Contains($" {ServiceIp}/24", StringComparison.Ordinal);

    /// <summary>Who answers on the service IP, asked from the client: the node's name, or null when nothing answers
    /// within a second.</summary>
    public async Task<string?> AnswerOnServiceIpAsync()
    {
        var (code, output) = await ProcessRunner.RunAsync("ip", "netns", "exec", Gateway.Name, "/usr/bin/python3", "-c",
            $"import socket; s = socket.create_connection(('{ServiceIp}', 8080), timeout=1); print(s.recv(64).decode().strip())");
        return code == 0 ? output.Trim() : null;
    }

    /// <summary>The hardware address the client's neighbour table gives the service IP, and the one of a node's LAN
    /// interface: equal when the gratuitous ARP of the last takeover reached the client.</summary>
    public async Task<(string? Client, string Node)> NeighbourOfServiceIpAsync(int me)
    {
        var neighbour = await Gateway.IpAsync("neigh", "show", ServiceIp);
        var client = LinkLayerAddress().Match(neighbour) is { Success: true } m ? m.Groups[1].Value : null;
        var link = await Node(me).IpAsync("-o", "link", "show", "lan0");
        return (client, EtherAddress().Match(link).Groups[1].Value);
    }

    /// <summary>Cuts (or heals) the dedicated link.</summary>
    public Task CutDedicatedAsync(bool cut) => A.IpAsync("link", "set", "ded0", cut ? "down" : "up");

    /// <summary>Drops (or lets through again) every TCP segment to <paramref name="port"/> arriving at node
    /// <paramref name="me"/> (nftables in its namespace): one protocol cut, the links and the pair's heartbeats
    /// untouched.</summary>
    public async Task BlockTcpPortAsync(int me, int port, bool block)
    {
        var name = Node(me).Name;
        string[][] commands = block
            ? [["add", "table", "inet", "apphbtest"],
               ["add", "chain", "inet", "apphbtest", "input", "{ type filter hook input priority 0; }"],
               ["add", "rule", "inet", "apphbtest", "input", "tcp", "dport", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "drop"]]
            : [["delete", "table", "inet", "apphbtest"]];
        foreach (var command in commands)
        {
            var (code, output) = await ProcessRunner.RunAsync("ip", ["netns", "exec", name, "nft", .. command]);
            if (code != 0)
            {
                throw new InvalidOperationException($"nft {string.Join(' ', command)} in {name} failed: {output}");
            }
        }
    }

    /// <summary>Cuts (or heals) the LAN between the two nodes only: their switch ports are isolated from each other
    /// (every frame, unicast, broadcast and multicast alike, as a misconfigured switch would drop them); both still
    /// reach the gateway.</summary>
    public async Task CutLanBetweenAsync(bool cut)
    {
        foreach (var me in new[] { 1, 2 })
        {
            var (code, output) = await ProcessRunner.RunAsync("bridge", "-n", Gateway.Name, "link", "set", "dev", Port(me), "isolated", cut ? "on" : "off");
            if (code != 0)
            {
                throw new InvalidOperationException($"cannot {(cut ? "isolate" : "rejoin")} node{me}'s switch port: {output}");
            }
        }
    }

    /// <summary>Cuts (or heals) a node's LAN at its switch port: it reaches neither the gateway nor its peer there.</summary>
    public Task CutLanPortAsync(int me, bool cut) => Gateway.IpAsync("link", "set", Port(me), cut ? "down" : "up");

    /// <summary>Powers the node off with the test fence agent: every process in it killed, its links down.</summary>
    public async Task PowerOffAsync(int me)
    {
        var (code, output) = await RunAgentAsync(me, "off");
        if (code != 0)
        {
            throw new InvalidOperationException($"powering node{me} off failed: {output}");
        }
    }

    /// <summary>What a reset does: everything in the node killed, its addresses as at boot (the service IP gone), its
    /// links up, apphbd started again on its configuration and state file.</summary>
    public async Task RebootAsync(int me)
    {
        await PowerOffAsync(me);
        await PowerOnAsync(me);
        if (_daemons[me] is { } daemon)
        {
            await daemon.StartProcessAsync();
        }
    }

    /// <summary>Powers a node on as it boots: its addresses as at boot (the service IP gone), its links up; its apphbd
    /// is not started.</summary>
    public async Task PowerOnAsync(int me)
    {
        // Checked, not assumed: the partition checker once saw a reset node's interface come up still holding the
        // address (trial 584 of the 2026-12-03 run), and this command's result was not looked at.
        // (A node that did not hold it makes `ip` fail, "Address not found": only the address still listed counts.)
        var (_, why) = await ProcessRunner.RunAsync("ip", "-n", Node(me).Name, "address", "del", $"{ServiceIp}/24", "dev", "lan0");
        if ((await Node(me).IpAsync("-o", "address", "show", "dev", "lan0")).Contains($" {ServiceIp}/24", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"node{me}'s lan0 still holds the service IP after `ip address del` ({why.Trim()})");
        }

        var (code, output) = await RunAgentAsync(me, "on");
        if (code != 0)
        {
            throw new InvalidOperationException($"powering node{me} on failed: {output}");
        }
    }

    private async Task<ProcessResult> RunAgentAsync(int me, string action)
    {
        var input = Path.Combine(Directory, $"agent-{me}-{action}.in");
        await File.WriteAllTextAsync(input, $"action={action}\nnetns={Node(me).Name}\n");
        return await ProcessRunner.RunAsync("/bin/sh", "-c", $"exec {Path.Combine(Directory, "agents", "fence_apphb_netns")} < {input}");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in _started)
        {
            await daemon.DisposeAsync();
        }

        A.Dispose();
        B.Dispose();
        Gateway.Dispose();
        _directory.Dispose();
    }

    [GeneratedRegex(@"lladdr (\S+)")]
    private static partial Regex LinkLayerAddress();

    [GeneratedRegex(@"link/ether (\S+)")]
    private static partial Regex EtherAddress();
}
