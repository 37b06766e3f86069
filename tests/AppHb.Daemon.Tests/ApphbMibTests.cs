using System.Xml.Linq;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Export;
using AppHb.Export.Snmp;
using AppHb.Protocol;
using AppHb.Testing;

namespace AppHb.Daemon.Tests;

/// <summary>APPHB-MIB.txt read by libsmi (smilint, smidump) against what apphbd serves: the text and the code must
/// say the same thing, object by object.</summary>
public sealed class ApphbMibTests
{
    private static readonly string MibFile = Path.Combine(RepositoryPaths.Root, "src", "AppHb.Export", "Snmp", "APPHB-MIB.txt");

    /// <summary>A libsmi tool with SMIPATH at the SMIv2 base modules the MIB imports.</summary>
    private static Task<ProcessResult> SmiAsync(string tool, params string[] args) =>
        ProcessRunner.RunAsync("env", [$"SMIPATH={Path.Combine(RepositoryPaths.Root, "tests", "mibs")}", tool, .. args]);

    /// <summary>Every object with its OID, kind (scalar, column, notification), access and SMI base type.</summary>
    private static async Task<List<(string Name, ObjectIdentifier Oid, string Kind, string Access, string Type, XElement Element)>> ObjectsAsync()
    {
        var dump = await SmiAsync("smidump", "-f", "xml", MibFile);
        Assert.True(dump.Code == 0, dump.Output);
        var document = XDocument.Parse(dump.StandardOutput);
        XNamespace ns = document.Root!.Name.Namespace;
        return document.Descendants()
            .Where(e => e.Name.LocalName is "scalar" or "column" or "notification" && e.Attribute("oid") is not null)
            .Select(e =>
            {
                var syntax = e.Element(ns + "syntax");
                var type = syntax?.Element(ns + "type")?.Attribute("name")?.Value
                    ?? syntax?.Element(ns + "typedef")?.Element(ns + "parent")?.Attribute("name")?.Value
                    ?? syntax?.Element(ns + "typedef")?.Attribute("basetype")?.Value
                    ?? string.Empty;
                return (e.Attribute("name")!.Value, ObjectIdentifier.Parse(e.Attribute("oid")!.Value), e.Name.LocalName,
                    e.Element(ns + "access")?.Value ?? string.Empty, type, e);
            })
            .ToList();
    }

    private static StatusDocument Sample() => new(
        new DaemonStatus("1.2.3", 4242, DateTimeOffset.UnixEpoch, 12.5, true, "fifo", 2, 0.2, 1.5, 1000, 2000, 3),
        new WatchdogStatus("linux", "/dev/watchdog0", "i6300ESB timer", 30, 10, 25, 120, 7, 1, true, ["CardReset"], 0.1, 0.3),
        [
            new ClientStatus(1, "orders", "", 100, 0, 0, 1000, 500, 12.3, "healthy", 10),
            new ClientStatus(7, "billing", "eu", 101, 0, 0, 2000, 0, 2500, "hung", 3),
        ],
        [
            new ServiceStatus("db", "running", true, 200, false, true, 3.2, 1, "signal 9 (SIGKILL)", null, null, [], []),
            new ServiceStatus("web", "waiting", true, null, false, false, 1, 0, null, "db", null, ["db"],
                [new CheckStatus("http", "http", "light", false, 2, 5, 2, 1.5, "refused")]),
        ],
        new ClusterStatus("alpha", "beta", true, "active", null, "peer-silent", "4@1", null, false, false, false, false, true, true,
            ["db"], ["192.0.2.10/24 on eth0"], ["192.0.2.1"], true, null,
            [new ClusterLinkStatus("cross", "dedicated", "eth1", "10.0.0.2:694", "dead", 3100), new ClusterLinkStatus("lan", "lan", "eth0", "192.0.2.3:694", "late", 400)],
            new ClusterFenceStatus(DateTimeOffset.UnixEpoch, "agent fence_ipmilan", true, "the peer is off"), 2, 17),
        new ReplicationStatus("/srv/data", "source", 3, "the peer closed the connection", 120, 117, 0.012, null, null, 1, false,
            new VerifyStatus(DateTimeOffset.UnixEpoch, 110, 40, 2, 1, false, 3), 3000, 500, 2000));

    private static StatusMib Mib(StatusDocument document) =>
        new(() => document, ConfigurationLoader.Load("services:\n  db:\n    command: [/bin/true]\n  web:\n    command: [/bin/true]\n", "test"), TimeProvider.System);

    [Fact]
    public async Task Smilint_at_level_6_finds_nothing_to_say()
    {
        var (code, output) = await SmiAsync("smilint", "-l", "6", "-s", MibFile);
        Assert.True(code == 0 && output.Trim().Length == 0, output);
    }

    [Fact]
    public async Task Every_readable_object_is_served_with_its_MIB_type_and_nothing_else_is()
    {
        var objects = await ObjectsAsync();
        var readable = objects.Where(o => o.Access == "readonly").ToList();
        Assert.Equal(9 + 9 + 9 + 8 + 13 + 11, readable.Count); // daemon, watchdog, service and client columns, pair and replication scalars
        var store = Mib(Sample()).Build(Sample());
        foreach (var o in readable)
        {
            var instances = o.Kind == "scalar" ? [o.Oid.Append(0)] : new[] { o.Oid.Append(1), o.Oid.Append(o.Name.StartsWith("apphbClient", StringComparison.Ordinal) ? 7u : 2u) };
            foreach (var instance in instances)
            {
                var value = store.Get(instance);
                var expected = Expected(o.Name, o.Type);
                Assert.True(value.TypeCode == expected, $"{o.Name} ({instance}): served {value.TypeCode}, the MIB says {o.Type}");
            }
        }

        // Nothing served outside the MIB's readable objects.
        foreach (var variable in store.Variables())
        {
            Assert.Contains(readable, o => variable.Id.StartsWith(o.Oid) && variable.Id.Length == o.Oid.Length + 1);
        }
    }

    [Fact]
    public async Task The_code_names_the_MIB_s_numbers_and_enumerations()
    {
        var objects = (await ObjectsAsync()).ToDictionary(o => o.Name);
        Assert.Equal(objects["apphbServiceFailed"].Oid, ApphbMib.Notification.ServiceFailed);
        Assert.Equal(objects["apphbServiceRestarted"].Oid, ApphbMib.Notification.ServiceRestarted);
        Assert.Equal(objects["apphbServiceGaveUp"].Oid, ApphbMib.Notification.ServiceGaveUp);
        Assert.Equal(objects["apphbClientHung"].Oid, ApphbMib.Notification.ClientHung);
        Assert.Equal(objects["apphbWatchdogResetBoot"].Oid, ApphbMib.Notification.WatchdogResetBoot);
        Assert.Equal(objects["apphbClusterTakeover"].Oid, ApphbMib.Notification.ClusterTakeover);
        Assert.Equal(objects["apphbClusterFenced"].Oid, ApphbMib.Notification.ClusterFenced);
        Assert.Equal(objects["apphbClusterFenceFailed"].Oid, ApphbMib.Notification.ClusterFenceFailed);
        Assert.Equal(objects["apphbClusterLinkDown"].Oid, ApphbMib.Notification.ClusterLinkDown);
        Assert.Equal(objects["apphbClusterSplitBrainFound"].Oid, ApphbMib.Notification.ClusterSplitBrain);
        Assert.Equal(objects["apphbNotifyLink"].Oid, ApphbMib.NotifyLink);
        Assert.Equal(objects["apphbClusterNode"].Oid, ApphbMib.Cluster.Node);
        Assert.Equal(objects["apphbClusterLastFence"].Oid, ApphbMib.Cluster.LastFence);
        Assert.Equal(objects["apphbReplicationPath"].Oid, ApphbMib.Replication.Path);
        Assert.Equal(objects["apphbReplicationConnections"].Oid, ApphbMib.Replication.Connections);
        Assert.Equal(objects["apphbNotifyMessage"].Oid, ApphbMib.NotifyMessage);
        Assert.Equal(objects["apphbServiceName"].Oid, ApphbMib.Service.Name);
        Assert.Equal(objects["apphbClientBeats"].Oid, ApphbMib.Client.Beats);
        Assert.Equal(objects["apphbWatchdogLastBootByWatchdog"].Oid, ApphbMib.Watchdog.LastBootByWatchdog);
        Assert.True(ApphbMib.Root.StartsWith(ObjectIdentifier.Parse("1.3.6.1.4.1")) && objects["apphbDaemonVersion"].Oid.StartsWith(ApphbMib.Root));

        // The state names have one source, Core's enums, which the status document, /metrics and the MIB code all
        // read: the MIB's text must list the same names, numbered from 1 in the enums' order.
        (string Name, int Number)[] Named(string name) => objects[name].Element.Descendants().Where(e => e.Name.LocalName == "namednumber")
            .Select(e => (e.Attribute("name")!.Value, int.Parse(e.Attribute("number")!.Value, System.Globalization.CultureInfo.InvariantCulture)))
            .OrderBy(e => e.Item2).ToArray();
        Assert.Equal(Named("apphbServiceState"), AppHb.Core.Supervision.ServiceRunStates.All.Select((n, i) => (n, i + 1)));
        Assert.Equal(Named("apphbClientState"), AppHb.Core.Heartbeats.ClientStates.All.Select((n, i) => (n, i + 1)));
        Assert.Equal(Named("apphbClusterRole").Select(r => r.Number), AppHb.Core.Cluster.ClusterRoles.All.Select((_, i) => i + 1));
        Assert.Equal<(string, int)>(Named("apphbClusterPeerRole"), [.. Named("apphbClusterRole"), ("unheard", AppHb.Core.Cluster.ClusterRoles.All.Count + 1)]);
        Assert.Equal(Named("apphbReplicationSide"), ApphbMib.Replication.Sides.Select((n, i) => (n, i + 1)));
        Assert.Same(AppHb.Core.Supervision.ServiceRunStates.All, ApphbMib.Service.States);
        Assert.Same(AppHb.Core.Heartbeats.ClientStates.All, ApphbMib.Client.States);
    }

    [Fact]
    public async Task Every_notification_carries_the_objects_its_MIB_clause_lists_in_order_with_their_types()
    {
        var objects = await ObjectsAsync();
        var byName = objects.ToDictionary(o => o.Name);
        var client = new AppHb.Core.Heartbeats.ClientSnapshot(7, "billing", "eu", 101, 0, 0, TimeSpan.FromSeconds(2), TimeSpan.Zero,
            TimeSpan.FromSeconds(3), AppHb.Core.Heartbeats.ClientState.Hung, 3);
        var db = Sample().Services[0];
        var sent = new List<MibNotification>
        {
            MibNotifications.ForEvent(new AppHb.Core.Events.ClientEvent(AppHb.Core.Events.ClientEventKind.Hung, client), _ => 1, _ => db)!.Value,
            MibNotifications.ForEvent(new AppHb.Core.Events.ServiceEvent(AppHb.Core.Events.ServiceEventKind.Exited, "db", 200, "exited", IsFailure: true), _ => 1, _ => db)!.Value,
            MibNotifications.ForEvent(new AppHb.Core.Events.ServiceEvent(AppHb.Core.Events.ServiceEventKind.Restarting, "db", null, "restarting"), _ => 1, _ => db)!.Value,
            MibNotifications.ForEvent(new AppHb.Core.Events.ServiceEvent(AppHb.Core.Events.ServiceEventKind.GaveUp, "db", null, "gave up", IsFailure: true), _ => 1, _ => db)!.Value,
            MibNotifications.WatchdogResetBoot("/dev/watchdog0"),
        };
        foreach (var kind in new[] { "takeover", "fenced", "fence-failed", "link-dead", "split-brain" })
        {
            sent.Add(MibNotifications.ForEvent(new AppHb.Core.Events.PairEvent(new AppHb.Core.Cluster.ClusterEvent(kind, kind, "cross")), _ => 1, _ => db,
                () => Sample().Cluster)!.Value);
        }

        var notifications = objects.Where(o => o.Kind == "notification").ToList();
        Assert.Equal(notifications.Select(n => n.Oid).Order(), sent.Select(n => n.Trap).Order());
        foreach (var notification in notifications)
        {
            var declared = notification.Element.Descendants().Where(e => e.Name.LocalName == "object").Select(e => byName[e.Attribute("name")!.Value]).ToList();
            var carried = sent.Single(n => n.Trap == notification.Oid).Objects;
            Assert.True(declared.Count == carried.Count, $"{notification.Name}: the MIB lists {declared.Count} objects, apphbd sends {carried.Count}");
            for (var i = 0; i < declared.Count; i++)
            {
                Assert.True(carried[i].Id.StartsWith(declared[i].Oid) && carried[i].Id.Length == declared[i].Oid.Length + 1,
                    $"{notification.Name} object {i + 1}: sends {carried[i].Id}, the MIB lists {declared[i].Name} ({declared[i].Oid})");
                Assert.Equal(Expected(declared[i].Name, declared[i].Type), carried[i].Data.TypeCode);
            }
        }

        // Not every event is a notification: a deliberate stop, a registration, a recovery are not.
        Assert.Null(MibNotifications.ForEvent(new AppHb.Core.Events.ServiceEvent(AppHb.Core.Events.ServiceEventKind.Exited, "db", 200, "stopped"), _ => 1, _ => db));
        Assert.Null(MibNotifications.ForEvent(new AppHb.Core.Events.ClientEvent(AppHb.Core.Events.ClientEventKind.Registered, client), _ => 1, _ => db));
        Assert.Null(MibNotifications.ForEvent(new AppHb.Core.Events.PairEvent(new AppHb.Core.Cluster.ClusterEvent("link-late", "late", "lan")), _ => 1, _ => db));
    }

    private static SnmpType Expected(string name, string type) => type switch
    {
        "DisplayString" or "OctetString" => SnmpType.OctetString,
        "TruthValue" or "Enumeration" => SnmpType.Integer32,
        "Unsigned32" or "Gauge32" => SnmpType.Gauge32,
        "Counter32" => SnmpType.Counter32,
        "Counter64" => SnmpType.Counter64,
        "TimeTicks" => SnmpType.TimeTicks,
        _ => throw new InvalidOperationException($"{name}: type {type} has no mapping in this test"),
    };

    [Fact]
    public void The_tables_read_the_status_document_row_by_row()
    {
        var store = Mib(Sample()).Build(Sample());
        Assert.Equal("db", store.Get(ApphbMib.Service.Name.Append(1)).ToString());
        Assert.Equal(new Integer32(3), store.Get(ApphbMib.Service.State.Append(1)));
        Assert.Equal(new Integer32(1), store.Get(ApphbMib.Service.State.Append(2)));
        Assert.Equal(new Gauge32(0), store.Get(ApphbMib.Service.Pid.Append(2)));
        Assert.Equal(new Gauge32(1), store.Get(ApphbMib.Service.ChecksFailing.Append(2)));
        Assert.Equal("signal 9 (SIGKILL)", store.Get(ApphbMib.Service.LastExit.Append(1)).ToString());
        Assert.Equal(new Integer32(3), store.Get(ApphbMib.Client.State.Append(7)));
        Assert.Equal("eu", store.Get(ApphbMib.Client.Instance.Append(7)).ToString());
        Assert.Equal(new Gauge32(2500), store.Get(ApphbMib.Client.LastBeatAge.Append(7)));
        Assert.Equal(new Integer32(1), store.Get(ApphbMib.Watchdog.LastBootByWatchdog.Append(0)));
        Assert.Equal(new TimeTicks(1250), store.Get(ApphbMib.Daemon.Uptime.Append(0)));
        Assert.Equal(new Gauge32(200), store.Get(ApphbMib.Daemon.LoopLateness.Append(0)));
        Assert.Equal(new Gauge32(1), store.Get(ApphbMib.Daemon.ClientsHung.Append(0)));
        Assert.Equal(new Gauge32(1), store.Get(ApphbMib.Daemon.ServicesDown.Append(0)));
        Assert.Equal(new Integer32(4), store.Get(ApphbMib.Cluster.Role.Append(0)));
        Assert.Equal(new Integer32(6), store.Get(ApphbMib.Cluster.PeerRole.Append(0)));
        Assert.Equal(new Integer32(2), store.Get(ApphbMib.Cluster.DedicatedLinkUp.Append(0)));
        Assert.Equal(new Integer32(1), store.Get(ApphbMib.Cluster.LanLinkUp.Append(0)));
        Assert.Equal("4@1", store.Get(ApphbMib.Cluster.Generation.Append(0)).ToString());
        Assert.Equal(new Counter64(17), store.Get(ApphbMib.Cluster.DatagramsRefused.Append(0)));
        Assert.Same(SnmpException.NoSuchInstance, store.Get(ApphbMib.Client.Name.Append(2)));
        Assert.Same(SnmpException.NoSuchObject, store.Get(ApphbMib.Root.Append(9, 9)));
    }

    [Fact]
    public void A_service_keeps_its_row_across_reloads_and_a_new_one_gets_the_next()
    {
        var mib = Mib(Sample());
        Assert.Equal(2u, mib.ServiceIndex("web"));
        Assert.Equal(3u, mib.ServiceIndex("cache"));
        Assert.Equal(1u, mib.ServiceIndex("db"));
        Assert.Equal(3u, mib.ServiceIndex("cache"));
    }

    [Fact]
    public void A_single_node_serves_no_pair_objects()
    {
        var store = Mib(Sample() with { Cluster = null }).Build(Sample() with { Cluster = null });
        Assert.Same(SnmpException.NoSuchObject, store.Get(ApphbMib.Cluster.Role.Append(0)));
        Assert.DoesNotContain(store.Variables(), v => v.Id.StartsWith(ApphbMib.Objects.Append(6)));
    }
}
