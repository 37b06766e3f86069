using AppHb.Daemon.Configuration;

namespace AppHb.Daemon.Tests;

/// <summary>The <c>replication:</c> section (issue 14): read with its defaults, every error at its file:line:column
/// and key; it needs the pair.</summary>
public sealed class ReplicationConfigurationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("apphb-replication-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Pair(string replication)
    {
        var key = Path.Combine(_directory, "cluster.key");
        File.WriteAllBytes(key, new byte[32]);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return $"""
            cluster:
              node: alpha
              node-id: 1
              peer: beta
              peer-id: 2
              cluster-id: 7
              key-file: {key}
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
              fence:
                - method: peer-link
            {replication}
            """;
    }

    [Fact]
    public void Nothing_is_replicated_without_the_section()
    {
        Assert.Null(ConfigurationLoader.Defaults().Replication);
    }

    [Fact]
    public void A_replicated_directory_is_read_with_its_defaults()
    {
        var replication = ConfigurationLoader.Load(Pair("replication:\n  path: /srv/data/\n  exclude: [cache, tmp/]"), "pair.yaml").Replication!;
        Assert.Equal("/srv/data", replication.Path);
        Assert.Equal(["cache", "tmp"], replication.Exclude);
        Assert.Equal(ReplicationOptions.DefaultPort, replication.Port);
        Assert.Equal("/var/lib/apphb/replication/data.journal", replication.Journal);
        // Beside the directory: on its filesystem (staged files are renamed into it), outside it.
        Assert.Equal("/srv/.apphb-replica-data", replication.StateDirectory);
        Assert.Equal(TimeSpan.FromSeconds(5), replication.BarrierTimeout);
        Assert.Equal(1024, replication.JournalLimitMiB);
        Assert.Equal(0, replication.ResyncRateMiB);
        Assert.False(replication.AllowLan);
        Assert.False(replication.Synchronous);
        Assert.Equal(64, replication.BlockSizeKiB);
        Assert.True(replication.IsExcluded("cache/x"));
        Assert.True(replication.IsExcluded("tmp"));
        Assert.False(replication.IsExcluded("cached"));
    }

    [Fact]
    public void Several_directories_and_single_files_share_one_journal_relative_to_the_directory_above_them()
    {
        var replication = ConfigurationLoader.Load(Pair("replication:\n  paths: [/srv/data/, /etc/apphb, /etc/hosts]\n  exclude: [/srv/data/cache]\n  state-directory: /var/lib/apphb/replica"), "pair.yaml").Replication!;
        Assert.Equal("/", replication.Path);
        Assert.Equal(["srv/data", "etc/apphb", "etc/hosts"], replication.Members);
        Assert.Equal(["srv/data/cache"], replication.Exclude);
        Assert.Equal("/var/lib/apphb/replication/paths.journal", replication.Journal);
        Assert.Equal("/var/lib/apphb/replica", replication.StateDirectory);
        Assert.Equal("/srv/data, /etc/apphb, /etc/hosts", replication.Shown);
        var scope = replication.Scope();
        Assert.True(scope.Replicates("etc/hosts"));
        Assert.False(scope.Replicates("etc/passwd"));
        Assert.False(scope.Replicates("srv/data/cache/x"));
        Assert.True(scope.Replicates("srv/data/orders"));

        // Under one directory: the paths are relative to it.
        var under = ConfigurationLoader.Load(Pair("replication:\n  paths: [/srv/a, /srv/b/c.db]"), "pair.yaml").Replication!;
        Assert.Equal("/var/lib/apphb/replication/paths.state", under.StateDirectory);
        Assert.Equal("/srv", under.Path);
        Assert.Equal(["a", "b/c.db"], under.Members);
    }

    [Fact]
    public void The_resync_rate_limit_the_lan_fallback_and_the_mode_are_read()
    {
        var replication = ConfigurationLoader.Load(Pair("replication:\n  path: /srv/data\n  resync-rate-mib: 40\n  allow-lan: true\n  mode: sync\n  block-size-kib: 4\n  compress: true"), "pair.yaml").Replication!;
        Assert.True(replication.Compress);
        Assert.False(ConfigurationLoader.Load(Pair("replication:\n  path: /srv/data"), "pair.yaml").Replication!.Compress);
        Assert.Equal(40, replication.ResyncRateMiB);
        Assert.True(replication.AllowLan);
        Assert.True(replication.Synchronous);
        Assert.Equal(4, replication.BlockSizeKiB);
    }

    [Fact]
    public void Replication_without_a_pair_is_refused_at_its_line()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load("replication:\n  path: /srv/data\n", "single.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith("single.yaml:2:", StringComparison.Ordinal) && error.Contains("replication.path: replication needs a cluster section", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("replication:\n  path: srv/data", "replication.path: must be an absolute path")]
    [InlineData("replication:\n  path: /srv/data\n  journal: /srv/data/.journal", "replication.journal: \"/srv/data/.journal\" is inside the replicated directory /srv/data")]
    [InlineData("replication:\n  path: /srv/data\n  state-directory: /srv/data/state", "replication.state-directory: \"/srv/data/state\" is inside the replicated directory")]
    [InlineData("replication:\n  path: /srv/data\n  exclude: [../etc]", "replication.exclude: \"../etc\":")]
    [InlineData("replication:\n  path: /srv/data\n  mode: eventually", "replication.mode:")]
    [InlineData("replication:\n  path: /srv/data\n  compress: maybe", "replication.compress:")]
    [InlineData("replication:\n  path: /srv/data\n  compression: true", "replication.compression: unknown key")]
    [InlineData("replication:\n  path: /srv/data\n  port: 70000", "replication.port:")]
    [InlineData("replication:\n  path: /srv/data\n  resync-rate-mib: -1", "replication.resync-rate-mib:")]
    [InlineData("replication:\n  path: /srv/data\n  allow-lan: sometimes", "replication.allow-lan:")]
    [InlineData("replication:\n  path: /srv/data\n  block-size-kib: 2048", "replication.block-size-kib:")]
    [InlineData("replication:\n  path: /srv/data\n  paths: [/etc/apphb]\n  state-directory: /srv/s", "replication.path: give either path (one directory) or paths")]
    [InlineData("replication:\n  paths: [etc/apphb]\n  state-directory: /srv/s", "replication.paths: \"etc/apphb\": must be an absolute path")]
    [InlineData("replication:\n  paths: [/srv/data, /srv/data/db]\n  state-directory: /srv/s", "replication.paths: \"/srv/data/db\" is under \"/srv/data\"")]
    [InlineData("replication:\n  paths: [/srv/data, /srv/data]\n  state-directory: /srv/s", "replication.paths: \"/srv/data\" is given twice")]
    [InlineData("replication:\n  paths: [/srv/data, /etc/apphb]\n  exclude: [/var/log]\n  state-directory: /srv/s", "replication.exclude: \"/var/log\": with paths, an exclude is an absolute path under one of them")]
    [InlineData("replication:\n  paths: [/srv/data, /etc/apphb]\n  state-directory: /etc/apphb/state", "replication.state-directory: \"/etc/apphb/state\" is inside the replicated path /etc/apphb")]
    public void A_wrong_value_is_refused_naming_file_line_and_key(string section, string expected)
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Pair(section), "pair.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith("pair.yaml:", StringComparison.Ordinal) && error.Contains(expected, StringComparison.Ordinal));
    }
}
