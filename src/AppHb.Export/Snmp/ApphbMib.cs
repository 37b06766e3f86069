namespace AppHb.Export.Snmp;

/// <summary>The OIDs of APPHB-MIB (APPHB-MIB.txt next to this file). The two are kept in step by a test that reads the
/// MIB with smidump and compares every name and number.</summary>
public static class ApphbMib
{
    /// <summary>enterprises.32473: RFC 5612's documentation number, to be replaced by the product's own Private
    /// Enterprise Number here and in APPHB-MIB.txt before shipping (README, "SNMP").</summary>
    public static ObjectIdentifier Root { get; } = ObjectIdentifier.Parse("1.3.6.1.4.1.32473");

    public static ObjectIdentifier Notifications { get; } = Root.Append(0);

    public static ObjectIdentifier Objects { get; } = Root.Append(1);

    public static class Daemon
    {
        public static ObjectIdentifier Version { get; } = Objects.Append(1, 1);

        public static ObjectIdentifier Pid { get; } = Objects.Append(1, 2);

        public static ObjectIdentifier Uptime { get; } = Objects.Append(1, 3);

        public static ObjectIdentifier MemoryLocked { get; } = Objects.Append(1, 4);

        public static ObjectIdentifier Clients { get; } = Objects.Append(1, 5);

        public static ObjectIdentifier Services { get; } = Objects.Append(1, 6);

        public static ObjectIdentifier LoopLateness { get; } = Objects.Append(1, 7);

        public static ObjectIdentifier ClientsHung { get; } = Objects.Append(1, 8);

        public static ObjectIdentifier ServicesDown { get; } = Objects.Append(1, 9);
    }

    public static class Watchdog
    {
        public static ObjectIdentifier Backend { get; } = Objects.Append(2, 1);

        public static ObjectIdentifier Device { get; } = Objects.Append(2, 2);

        public static ObjectIdentifier Identity { get; } = Objects.Append(2, 3);

        public static ObjectIdentifier Timeout { get; } = Objects.Append(2, 4);

        public static ObjectIdentifier Period { get; } = Objects.Append(2, 5);

        public static ObjectIdentifier Tickles { get; } = Objects.Append(2, 6);

        public static ObjectIdentifier Withheld { get; } = Objects.Append(2, 7);

        public static ObjectIdentifier LastTickleAge { get; } = Objects.Append(2, 8);

        public static ObjectIdentifier LastBootByWatchdog { get; } = Objects.Append(2, 9);
    }

    /// <summary>apphbServiceEntry columns (the index column, 1, is not accessible).</summary>
    public static class Service
    {
        public static ObjectIdentifier Entry { get; } = Objects.Append(3, 1);

        public static ObjectIdentifier Name { get; } = Entry.Append(2);

        public static ObjectIdentifier State { get; } = Entry.Append(3);

        public static ObjectIdentifier Wanted { get; } = Entry.Append(4);

        public static ObjectIdentifier Pid { get; } = Entry.Append(5);

        public static ObjectIdentifier Critical { get; } = Entry.Append(6);

        public static ObjectIdentifier Restarts { get; } = Entry.Append(7);

        public static ObjectIdentifier LastExit { get; } = Entry.Append(8);

        public static ObjectIdentifier StateAge { get; } = Entry.Append(9);

        public static ObjectIdentifier ChecksFailing { get; } = Entry.Append(10);

        /// <summary>apphbServiceState's enumeration, in the status document's words.</summary>
        public static IReadOnlyList<string> States => AppHb.Core.Supervision.ServiceRunStates.All;
    }

    /// <summary>apphbClientEntry columns.</summary>
    public static class Client
    {
        public static ObjectIdentifier Entry { get; } = Objects.Append(4, 1);

        public static ObjectIdentifier Name { get; } = Entry.Append(2);

        public static ObjectIdentifier Instance { get; } = Entry.Append(3);

        public static ObjectIdentifier Pid { get; } = Entry.Append(4);

        public static ObjectIdentifier State { get; } = Entry.Append(5);

        public static ObjectIdentifier Interval { get; } = Entry.Append(6);

        public static ObjectIdentifier WarnTime { get; } = Entry.Append(7);

        public static ObjectIdentifier LastBeatAge { get; } = Entry.Append(8);

        public static ObjectIdentifier Beats { get; } = Entry.Append(9);

        /// <summary>apphbClientState's enumeration.</summary>
        public static IReadOnlyList<string> States => AppHb.Core.Heartbeats.ClientStates.All;
    }

    /// <summary>apphbCluster scalars: served by a node of a pair only.</summary>
    public static class Cluster
    {
        public static ObjectIdentifier Node { get; } = Objects.Append(6, 1);

        public static ObjectIdentifier Peer { get; } = Objects.Append(6, 2);

        public static ObjectIdentifier Role { get; } = Objects.Append(6, 3);

        public static ObjectIdentifier PeerRole { get; } = Objects.Append(6, 4);

        public static ObjectIdentifier Generation { get; } = Objects.Append(6, 5);

        public static ObjectIdentifier PeerGeneration { get; } = Objects.Append(6, 6);

        public static ObjectIdentifier SplitBrain { get; } = Objects.Append(6, 7);

        public static ObjectIdentifier GroupRunning { get; } = Objects.Append(6, 8);

        public static ObjectIdentifier DedicatedLinkUp { get; } = Objects.Append(6, 9);

        public static ObjectIdentifier LanLinkUp { get; } = Objects.Append(6, 10);

        public static ObjectIdentifier Takeovers { get; } = Objects.Append(6, 11);

        public static ObjectIdentifier DatagramsRefused { get; } = Objects.Append(6, 12);

        public static ObjectIdentifier LastFence { get; } = Objects.Append(6, 13);

        /// <summary>apphbClusterRole's enumeration, in the status document's words; apphbClusterPeerRole adds
        /// unheard(6).</summary>
        public static IReadOnlyList<string> Roles => AppHb.Core.Cluster.ClusterRoles.All;
    }

    /// <summary>apphbReplication scalars: served by a node with a replication section only.</summary>
    public static class Replication
    {
        public static ObjectIdentifier Path { get; } = Objects.Append(7, 1);

        public static ObjectIdentifier Side { get; } = Objects.Append(7, 2);

        public static ObjectIdentifier LagRecords { get; } = Objects.Append(7, 3);

        public static ObjectIdentifier LagMilliseconds { get; } = Objects.Append(7, 4);

        public static ObjectIdentifier Resyncing { get; } = Objects.Append(7, 5);

        public static ObjectIdentifier Resyncs { get; } = Objects.Append(7, 6);

        public static ObjectIdentifier Connections { get; } = Objects.Append(7, 7);

        public static ObjectIdentifier Verifies { get; } = Objects.Append(7, 8);

        public static ObjectIdentifier VerifyDifferences { get; } = Objects.Append(7, 9);

        public static ObjectIdentifier LagKiB { get; } = Objects.Append(7, 10);

        public static ObjectIdentifier ResyncPercent { get; } = Objects.Append(7, 11);

        /// <summary>apphbReplicationSide's enumeration, in the status document's words (the metrics' side labels too).</summary>
        public static IReadOnlyList<string> Sides { get; } = ["source", "replica", "idle"];
    }

    public static ObjectIdentifier NotifyMessage { get; } = Objects.Append(5, 1);

    public static ObjectIdentifier NotifyLink { get; } = Objects.Append(5, 2);

    public static class Notification
    {
        public static ObjectIdentifier ServiceFailed { get; } = Notifications.Append(1);

        public static ObjectIdentifier ServiceRestarted { get; } = Notifications.Append(2);

        public static ObjectIdentifier ServiceGaveUp { get; } = Notifications.Append(3);

        public static ObjectIdentifier ClientHung { get; } = Notifications.Append(4);

        public static ObjectIdentifier WatchdogResetBoot { get; } = Notifications.Append(5);

        public static ObjectIdentifier ClusterTakeover { get; } = Notifications.Append(6);

        public static ObjectIdentifier ClusterFenced { get; } = Notifications.Append(7);

        public static ObjectIdentifier ClusterFenceFailed { get; } = Notifications.Append(8);

        public static ObjectIdentifier ClusterLinkDown { get; } = Notifications.Append(9);

        public static ObjectIdentifier ClusterSplitBrain { get; } = Notifications.Append(10);
    }

    /// <summary>TruthValue (SNMPv2-TC): true(1), false(2).</summary>
    public static Integer32 Truth(bool value) => new(value ? 1 : 2);

    /// <summary>An enumeration's value: its position in <paramref name="names"/> plus one, 0 when unknown.</summary>
    public static Integer32 Enumeration(IReadOnlyList<string> names, string value)
    {
        ArgumentNullException.ThrowIfNull(names);
        for (var i = 0; i < names.Count; i++)
        {
            if (names[i] == value)
            {
                return new Integer32(i + 1);
            }
        }

        return new Integer32(0);
    }

    /// <summary>A DisplayString of at most 255 octets, cut at a character boundary.</summary>
    public static OctetString Display(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return OctetString.Empty;
        }

        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        if (bytes.Length <= 255)
        {
            return OctetString.Own(bytes);
        }

        var cut = 255;
        while (cut > 0 && (bytes[cut] & 0xC0) == 0x80)
        {
            cut--;
        }

        return new OctetString(bytes.AsSpan(0, cut));
    }
}
