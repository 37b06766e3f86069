using System.Net;
using AppHb.Core.Cluster;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;

namespace AppHb.Daemon.Tests;

/// <summary>The <c>cluster:</c> section (issue 13): a pair's configuration read and checked in full, every error at
/// its file:line:column and key; its absence means a single node.</summary>
public sealed class ClusterConfigurationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("apphb-cluster-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string KeyFile(UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite, int length = 32)
    {
        var path = Path.Combine(_directory, $"cluster-{mode:D}-{length}.key");
        File.WriteAllBytes(path, new byte[length]);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private static string Pair(string key, string extra = "", string deadtime = "2s") => $"""
        services:
          db:
            command: [/bin/sleep, "1000"]
          web:
            command: [/bin/sleep, "1000"]
            requires: [db]
        cluster:
          node: alpha
          node-id: 1
          peer: beta
          peer-id: 2
          cluster-id: 7
          key-file: {key}
          keepalive: 200ms
          deadtime: {deadtime}
          preferred: alpha
          links:
            - name: cross
              kind: dedicated
              interface: eth1
              local: 10.0.0.1
              peer: 10.0.0.2
              port: 694
            - name: lan
              kind: lan
              interface: eth0
              local: 192.168.1.2
              peer: 192.168.1.3
              port: 694
          ping: [192.168.1.1]
          service-ips:
            - address: 192.168.1.10/24
              interface: eth0
          group: [db, web]
          fence:
            - method: agent
              agent: fence_ipmilan
              options:
                ip: 10.0.0.9
                username: admin
              timeout: 20s
            - method: peer-link
        {extra}
        """;

    [Fact]
    public void A_single_node_has_no_cluster()
    {
        Assert.Null(ConfigurationLoader.Defaults().Cluster);
    }

    [Fact]
    public void A_complete_pair_is_read_with_its_defaults()
    {
        var cluster = ConfigurationLoader.Load(Pair(KeyFile()), "pair.yaml").Cluster!;
        Assert.Equal(("alpha", (ushort)1, "beta", (ushort)2, 7u), (cluster.Node, cluster.NodeId, cluster.Peer, cluster.PeerId, cluster.ClusterId));
        Assert.True(cluster.Preferred);
        Assert.Equal(TimeSpan.FromMilliseconds(200), cluster.Timings.Keepalive);
        Assert.Equal(ClusterTimings.Default.InitDead, cluster.Timings.InitDead);
        Assert.Null(cluster.Timings.FailbackDelay);
        Assert.Equal([LinkKind.Dedicated, LinkKind.Lan], cluster.Links.Select(l => l.Kind));
        Assert.Equal(IPAddress.Parse("10.0.0.2"), cluster.Links[0].Peer);
        Assert.Equal((IPAddress.Parse("192.168.1.10"), 24, 5), (cluster.ServiceIps[0].Address, cluster.ServiceIps[0].PrefixLength, cluster.ServiceIps[0].AnnounceCount));
        Assert.Equal(["db", "web"], cluster.Group);
        Assert.Equal(["agent", "peer-link"], cluster.Fence.Select(f => f.Kind));
        Assert.Equal(new KeyValuePair<string, string>("ip", "10.0.0.9"), cluster.Fence[0].Options[0]);
        Assert.Equal(("/var/lib/apphb/pair.state", "/usr/sbin"), (cluster.StateFile, cluster.FenceAgentDirectory));
    }

    [Fact]
    public void The_groups_services_run_in_the_pair_group_and_the_others_on_every_node()
    {
        var yaml = Pair(KeyFile()).Replace("  web:\n", "  sshd:\n    command: [/bin/sleep, \"1000\"]\n  web:\n", StringComparison.Ordinal);
        var options = ConfigurationLoader.Load(yaml, "pair.yaml");
        Assert.Equal(
            [("db", ServiceDefinition.PairGroup), ("sshd", ServiceDefinition.NodeGroup), ("web", ServiceDefinition.PairGroup)],
            options.Services.Select(s => (s.Name, s.ResourceGroup)).OrderBy(s => s.Name, StringComparer.Ordinal));
    }

    [Fact]
    public void A_service_outside_the_group_may_not_require_one_inside()
    {
        var yaml = Pair(KeyFile()).Replace("  group: [db, web]", "  group: [db]", StringComparison.Ordinal);
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(yaml, "pair.yaml"));
        Assert.Contains("pair.yaml:", e.Message, StringComparison.Ordinal);
        Assert.Contains("cluster.group: service \"web\" runs on both nodes but requires \"db\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Automatic_failback_takes_its_delay()
    {
        var cluster = ConfigurationLoader.Load(Pair(KeyFile(), "  failback: auto\n  failback-delay: 90s\n"), "pair.yaml").Cluster!;
        Assert.Equal(TimeSpan.FromSeconds(90), cluster.Timings.FailbackDelay);
    }

    [Fact]
    public void Deadtime_under_twice_keepalive_is_refused_at_its_line()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair(KeyFile(), deadtime: "300ms"), "pair.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith("pair.yaml:15:", StringComparison.Ordinal) && error.Contains("cluster.deadtime: deadtime (300 ms) must be at least twice keepalive (200 ms)", StringComparison.Ordinal));
    }

    [Fact]
    public void A_fence_delay_leaving_the_active_node_under_twice_keepalive_of_silence_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair(KeyFile(), "  fence-delay: 1700ms\n"), "pair.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith("pair.yaml:", StringComparison.Ordinal) && error.Contains("cluster.fence-delay: fence-delay (1700 ms) must leave the active node at least twice keepalive of silence", StringComparison.Ordinal) && error.Contains("at most 1600 ms here", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("2s", 1000)]
    [InlineData("1s", 500)]
    public void The_fence_delay_defaults_to_a_second_or_what_a_short_deadtime_allows(string deadtime, int milliseconds)
    {
        var timings = ConfigurationLoader.Load(Pair(KeyFile(), deadtime: deadtime), "pair.yaml").Cluster!.Timings;
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), timings.FenceDelay);
        Assert.Null(timings.Validate());
    }

    [Fact]
    public void A_key_file_others_may_read_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair(KeyFile(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead)), "pair.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith("pair.yaml:13:", StringComparison.Ordinal) && error.Contains("has mode 604: it must be 0600", StringComparison.Ordinal));
    }

    [Fact]
    public void A_short_or_missing_key_file_is_refused()
    {
        var shortKey = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair(KeyFile(length: 16)), "pair.yaml"));
        Assert.Contains(shortKey.Errors, error => error.Contains("cluster.key-file: holds fewer than 32 bytes", StringComparison.Ordinal));
        var missing = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair("/nonexistent/cluster.key"), "pair.yaml"));
        Assert.Contains(missing.Errors, error => error.Contains("cluster.key-file: cannot be read: /nonexistent/cluster.key", StringComparison.Ordinal));
    }

    public static TheoryData<string, string, string> Mistakes => new()
    {
        { "  peer: beta", "  peer: alpha", "cluster.peer: must differ from node (alpha)" },
        { "      kind: dedicated", "      kind: lan", "cluster.links: a pair needs at least one dedicated link" },
        { "  group: [db, web]", "  group: [db, cache]", "cluster.group: \"cache\" is not a service of this configuration" },
        { "      local: 10.0.0.1", "      local: 10.0.0.300", "cluster.links[0].local: \"10.0.0.300\" is not an IP address" },
        { "    - address: 192.168.1.10/24", "    - address: 192.168.1.10", "cluster.service-ips[0].address: \"192.168.1.10\" is not an address with its prefix length" },
        { "  preferred: alpha", "  preferred: gamma", "cluster.preferred: \"gamma\" is neither this node (alpha) nor the peer (beta)" },
        { "      agent: fence_ipmilan", "      agent: /tmp/fence_mine", "cluster.fence[0].agent: required for method agent" },
        { "  ping: [192.168.1.1]", "  ping: [gateway]", "cluster.ping: \"gateway\" is not an IP address" },
        { "  ping: [192.168.1.1]", "  ping: [192.168.1.1]\n  state-file: pair.state", "cluster.state-file: \"pair.state\" is not an absolute path" },
        { "  ping: [192.168.1.1]", "  ping: [192.168.1.1]\n  fence-agent-directory: /nonexistent/agents", "cluster.fence-agent-directory: \"/nonexistent/agents\" is not a directory" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public void Each_mistake_names_its_key(string replace, string with, string expected)
    {
        var yaml = Pair(KeyFile());
        Assert.Contains(replace, yaml, StringComparison.Ordinal);
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(ReplaceFirst(yaml, replace, with), "pair.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith("pair.yaml:", StringComparison.Ordinal) && error.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Failback_delay_without_automatic_failback_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair(KeyFile(), "  failback-delay: 90s\n"), "pair.yaml"));
        Assert.Contains(e.Errors, error => error.Contains("cluster.failback-delay: only with failback: auto", StringComparison.Ordinal));
    }

    private static string ReplaceFirst(string text, string old, string replacement)
    {
        var at = text.IndexOf(old, StringComparison.Ordinal);
        return text[..at] + replacement + text[(at + old.Length)..];
    }
}
