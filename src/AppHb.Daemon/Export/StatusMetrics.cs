using AppHb.Core.Events;
using AppHb.Core.Heartbeats;
using AppHb.Daemon.Status;
using AppHb.Export.Metrics;

namespace AppHb.Daemon.Export;

/// <summary>The families read from the status snapshot just before each scrape: the daemon, its watchdog, every
/// client and service. Client event totals are counted from a bounded event subscription drained at scrape time, so
/// neither a scrape nor a slow scraper can hold up the heartbeat path.</summary>
internal sealed class StatusMetrics : IDisposable
{
    private static IReadOnlyList<string> States => AppHb.Core.Supervision.ServiceRunStates.All;
    private readonly EventSubscription _events;
    // Scrapes are serialized (MetricsServer), so these are touched by one scrape at a time.
    private readonly Dictionary<ulong, ClientSeries> _clientSeries = [];
    // Kept from scrape to scrape: reading the clients allocates nothing once it has grown to their number.
    private readonly List<ClientReading> _readings = [];
    private int _generation;

    public StatusMetrics(CollectorRegistry registry, StatusReporter status, EventStream events, SnmpAgent snmp, Configuration.ApphbdOptions options,
        Clients.ClientSocketServer server, AppHb.Core.Heartbeats.HeartbeatRegistry heartbeats, Cluster.ClusterHost cluster,
        Cluster.ReplicationHost replication)
    {
        _events = events.Subscribe(capacity: 100_000);
        var build = registry.CreateGauge("apphb_build_info", "apphbd's version (the value is 1).", "version");
        var uptime = registry.CreateGauge("apphb_daemon_uptime_seconds", "Seconds since apphbd started.");
        var start = registry.CreateGauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.");
        var rss = registry.CreateGauge("process_resident_memory_bytes", "Resident memory size in bytes.");
        var cpu = registry.CreateCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
        var heap = registry.CreateGauge("apphb_gc_heap_bytes", "Managed heap size after the last collection.");
        var collections = registry.CreateCounter("apphb_gc_collections_total", "Garbage collections since start, all generations.");
        var allocated = registry.CreateCounter("apphb_allocated_bytes_total", "Managed bytes allocated since start.");
        // Beside the tickle-lateness histogram: a collection in progress holds every managed thread, the tickle
        // loop's included, on its way back from a sleep.
        var gcPause = registry.CreateCounter("apphb_gc_pause_seconds_total", "Time apphbd's threads were paused by garbage collections since start.");
        var locked = registry.CreateGauge("apphb_memory_locked", "1 when apphbd's memory is locked (mlockall).");
        var loop = registry.CreateGauge("apphb_deadline_loop_lateness_p99_seconds", "How late the deadline loop woke, p99 over the recent window.");

        var timeout = registry.CreateGauge("apphb_watchdog_timeout_seconds", "The hardware watchdog's timeout.", "backend");
        var tickles = registry.CreateCounter("apphb_watchdog_tickles_total", "Times the watchdog was fed.");
        var withheld = registry.CreateCounter("apphb_watchdog_withheld_total", "Tickles withheld because apphbd's loops had not proved alive.");
        var period = registry.CreateGauge("apphb_watchdog_period_seconds", "How often apphbd feeds the watchdog.");
        var lastTickle = registry.CreateGauge("apphb_watchdog_last_tickle_age_seconds", "Seconds since the watchdog was last fed.");
        var bootByWatchdog = registry.CreateGauge("apphb_watchdog_last_boot_by_watchdog", "1 when the device says the last reset was the watchdog's.");

        var clients = registry.CreateGauge("apphb_clients", "Registered heartbeat clients.");
        var age = registry.CreateGauge("apphb_client_last_beat_age_seconds", "Seconds since a client's last heartbeat.", "name", "client_instance");
        var interval = registry.CreateGauge("apphb_client_interval_seconds", "A client's heartbeat interval (hung after it).", "name", "client_instance");
        var hung = registry.CreateGauge("apphb_client_is_hung", "1 while a client is hung.", "name", "client_instance");
        var warnTotal = registry.CreateCounter("apphb_client_warn_total", "Warn events, per client name.", "name");
        var hungTotal = registry.CreateCounter("apphb_client_hung_total", "Hung events, per client name.", "name");
        var diedTotal = registry.CreateCounter("apphb_client_died_total", "Clients that died without unregistering, per name.", "name");
        var connections = registry.CreateGauge("apphb_client_connections", "Open connections on the client socket, those that have not sent anything yet included.");
        var refused = registry.CreateCounter("apphb_client_connections_refused_total", "Connections refused with an Error frame: a uid's limit, the open-file limit, shutting down.");
        var deferred = registry.CreateCounter("apphb_client_raises_deferred_total", "Warn or hung raises put off because the client's beat was waiting unread in its socket.");
        var dropped = registry.CreateCounter("apphb_metrics_events_dropped_total", "Events the exporter could not count (more than 100,000 between two scrapes).");

        var up = registry.CreateGauge("apphb_service_up", "1 while a service is running (ready).", "service");
        var state = registry.CreateGauge("apphb_service_state", "1 for the state a service is in.", "service", "state");
        var restarts = registry.CreateCounter("apphb_service_restarts_total", "Restarts of a service since apphbd started.", "service");
        var lastExit = registry.CreateGauge("apphb_service_last_exit_code", "Exit code of a service's last exit; minus the signal number when killed by one.", "service");
        var critical = registry.CreateGauge("apphb_service_critical", "1 for a critical service (its failure reboots the node).", "service");

        // The SNMP families exist only where SNMP is on: a 0 on a node without it would read as snmpd being away.
        if (options.Snmp.AgentX is not null)
        {
            AddSnmp(registry, snmp);
        }

        // Likewise the pair's: a single node has no peer to be up or down.
        if (options.Cluster is not null)
        {
            AddPair(registry, cluster);
        }

        if (options.Replication is not null)
        {
            AddReplication(registry, replication);
        }

        registry.AddBeforeCollectCallback(() =>
        {
            var document = status.BuildWithoutClients();
            var d = document.Daemon;
            build.WithLabels(d.Version).Set(1);
            uptime.Set(d.UptimeSeconds);
            start.Set(d.StartedAt.ToUnixTimeMilliseconds() / 1000.0);
            rss.Set(AppHb.Linux.Processes.SelfResources.ResidentBytes());
            cpu.WithLabels().IncTo(Environment.CpuUsage.TotalTime.TotalSeconds);

            connections.Set(server.OpenConnections);
            refused.WithLabels().IncTo(server.Refused);
            deferred.WithLabels().IncTo(heartbeats.DeferredRaises);
            heap.Set(d.GcHeapBytes);
            collections.WithLabels().IncTo(d.GcCollections);
            gcPause.WithLabels().IncTo(GC.GetTotalPauseDuration().TotalSeconds);
            allocated.WithLabels().IncTo(d.AllocatedBytes);
            locked.Set(d.MemoryLocked ? 1 : 0);
            loop.Set(d.LoopLatenessP99Ms / 1000);

            var w = document.Watchdog;
            timeout.Clear();
            timeout.WithLabels(w.Backend).Set(w.TimeoutSeconds);
            period.Set(w.PeriodSeconds);
            tickles.WithLabels().IncTo(w.Tickles);
            withheld.WithLabels().IncTo(w.Withheld);
            lastTickle.Set(w.LastTickleAgeMs is { } ms ? ms / 1000 : double.NaN);
            bootByWatchdog.Set(w.LastBootByWatchdog ? 1 : 0);

            heartbeats.Read(_readings);
            clients.Set(_readings.Count);
            UpdateClients(_readings, age, interval, hung);

            while (_events.Reader.TryRead(out var appEvent))
            {
                if (appEvent is ClientEvent e)
                {
                    switch (e.ClientKind)
                    {
                        case ClientEventKind.Warn:
                            warnTotal.WithLabels(e.Client.Name).Inc();
                            break;
                        case ClientEventKind.Hung:
                            hungTotal.WithLabels(e.Client.Name).Inc();
                            break;
                        case ClientEventKind.Died:
                            diedTotal.WithLabels(e.Client.Name).Inc();
                            break;
                    }
                }
            }

            dropped.WithLabels().IncTo(_events.Dropped);

            foreach (var s in document.Services)
            {
                up.WithLabels(s.Name).Set(s.State == "running" ? 1 : 0);
                foreach (var known in States)
                {
                    state.WithLabels(s.Name, known).Set(s.State == known ? 1 : 0);
                }

                restarts.WithLabels(s.Name).IncTo(s.Restarts);
                lastExit.WithLabels(s.Name).Set(s.LastExitCode ?? (s.LastExitSignal is { } signal ? -signal : double.NaN));
                critical.WithLabels(s.Name).Set(s.Critical ? 1 : 0);
            }
        });
    }

    /// <summary>Each client's three series, found by its registration id: one lookup of a number per client and
    /// scrape instead of three by label text. Clients gone since the last scrape lose their series before new ones get
    /// theirs, so a client that re-registered under the same name and instance starts with fresh series.</summary>
    private void UpdateClients(List<ClientReading> readings, Gauge age, Gauge interval, Gauge hung)
    {
        _generation++;
        List<ClientReading>? arrived = null;
        foreach (var c in readings)
        {
            if (_clientSeries.TryGetValue(c.Id, out var series))
            {
                series.Generation = _generation;
                series.Set(c);
            }
            else
            {
                (arrived ??= []).Add(c);
            }
        }

        if (_clientSeries.Count + (arrived?.Count ?? 0) > readings.Count)
        {
            foreach (var (id, series) in _clientSeries)
            {
                if (series.Generation != _generation)
                {
                    age.Remove(series.Name, series.Instance);
                    interval.Remove(series.Name, series.Instance);
                    hung.Remove(series.Name, series.Instance);
                    _clientSeries.Remove(id);
                }
            }
        }

        foreach (var c in arrived ?? [])
        {
            var series = new ClientSeries(c.Name, c.Instance, age.WithLabels(c.Name, c.Instance), interval.WithLabels(c.Name, c.Instance), hung.WithLabels(c.Name, c.Instance))
            {
                Generation = _generation,
            };
            series.Set(c);
            _clientSeries.Add(c.Id, series);
        }
    }

    private sealed class ClientSeries(string name, string instance, Gauge.Child age, Gauge.Child interval, Gauge.Child hung)
    {
        public string Name => name;

        public string Instance => instance;

        public int Generation { get; set; }

        public void Set(ClientReading client)
        {
            age.Set(StatusReporter.LastBeatAgeMs(client.LastBeatAge) / 1000);
            interval.Set(client.Interval.TotalSeconds);
            hung.Set(client.State == ClientState.Hung ? 1 : 0);
        }
    }

    private static void AddSnmp(CollectorRegistry registry, SnmpAgent snmp)
    {
        var snmpRegistered = registry.CreateGauge("apphb_snmp_registered", "1 while the AgentX subagent is registered with snmpd.");
        var snmpRegistrations = registry.CreateCounter("apphb_snmp_registrations_total", "Sessions opened and registered with snmpd (one more after each snmpd restart).");
        var snmpRequests = registry.CreateCounter("apphb_snmp_requests_total", "AgentX requests answered (snmpd sends one per varbind of a walk).");
        var snmpSent = registry.CreateCounter("apphb_snmp_notifications_sent_total", "Notifications snmpd acknowledged.");
        var snmpDropped = registry.CreateCounter("apphb_snmp_notifications_dropped_total", "Notifications dropped from a full queue while snmpd was away.");

        registry.AddBeforeCollectCallback(() =>
        {
            if (snmp.Subagent is { } subagent)
            {
                snmpRegistered.Set(subagent.IsRegistered ? 1 : 0);
                snmpRegistrations.WithLabels().IncTo(subagent.Registrations);
                snmpRequests.WithLabels().IncTo(subagent.Requests);
                snmpSent.WithLabels().IncTo(subagent.NotificationsSent);
                snmpDropped.WithLabels().IncTo(subagent.NotificationsDropped);
            }
        });
    }

    private static void AddPair(CollectorRegistry registry, Cluster.ClusterHost cluster)
    {
        var roles = Enum.GetValues<AppHb.Core.Cluster.ClusterRole>();
        var role = registry.CreateGauge("apphb_cluster_role", "1 for this node's role in the pair.", "role");
        var peerRole = registry.CreateGauge("apphb_cluster_peer_role", "1 for the peer's role as its latest heartbeat said (all 0 before it was heard).", "role");
        var generation = registry.CreateGauge("apphb_cluster_generation", "This node's data generation number (bumped, and fsync'd, on every takeover).");
        var peerGeneration = registry.CreateGauge("apphb_cluster_peer_generation", "The peer's data generation number as last heard (NaN before).");
        var splitBrain = registry.CreateGauge("apphb_cluster_split_brain", "1 while the two nodes' data generations diverge (nothing moves until resolved).");
        var stale = registry.CreateGauge("apphb_cluster_stale", "1 while this node's data is older than the peer's.");
        var standby = registry.CreateGauge("apphb_cluster_standby", "1 while this node is held standby (apphbctl standby, or fenced by the peer over the dedicated link).");
        var groupRunning = registry.CreateGauge("apphb_cluster_group_running", "1 while the pair's group runs on this node.");
        var reaches = registry.CreateGauge("apphb_cluster_ping_targets_reached", "1 while this node reaches at least one LAN ping target (1 without targets).");
        var linkUp = registry.CreateGauge("apphb_cluster_link_up", "1 while the peer is heard on the link (up or late).", "link", "kind");
        var lastHeard = registry.CreateGauge("apphb_cluster_link_last_heard_age_seconds", "Seconds since the peer was last heard on the link (NaN if never since apphbd started).", "link");
        var takeovers = registry.CreateCounter("apphb_cluster_takeovers_total", "Times this node became active since apphbd started.");
        var fences = registry.CreateCounter("apphb_cluster_fences_total", "Fence attempts against the peer, by method and result.", "method", "result");
        var refused = registry.CreateCounter("apphb_cluster_datagrams_refused_total", "Peer datagrams refused, by reason.", "reason");
        var reasons = Enum.GetValues<AppHb.Cluster.Wire.PeerRejection>().Where(r => r != AppHb.Cluster.Wire.PeerRejection.None).ToArray();

        registry.AddBeforeCollectCallback(() =>
        {
            if (cluster.Pair is not { Status: { } status } pair || cluster.Status() is not { } document)
            {
                return;
            }

            foreach (var r in roles)
            {
                role.WithLabels(AppHb.Core.Cluster.ClusterRoles.Name(r)).Set(status.Role == r ? 1 : 0);
                peerRole.WithLabels(AppHb.Core.Cluster.ClusterRoles.Name(r)).Set(status.PeerRole == r ? 1 : 0);
            }

            generation.Set(status.Generations[0].Number);
            peerGeneration.Set(status.PeerGenerations.Count > 0 ? status.PeerGenerations[0].Number : double.NaN);
            splitBrain.Set(status.SplitBrain ? 1 : 0);
            stale.Set(status.Stale ? 1 : 0);
            standby.Set(status.StandbyMode ? 1 : 0);
            groupRunning.Set(status.GroupRunning ? 1 : 0);
            reaches.Set(status.ReachesPingTargets ? 1 : 0);
            foreach (var l in document.Links)
            {
                linkUp.WithLabels(l.Name, l.Kind).Set(l.State is "up" or "late" ? 1 : 0);
                lastHeard.WithLabels(l.Name).Set(l.LastHeardAgeMs is { } ms ? ms / 1000 : double.NaN);
            }

            takeovers.WithLabels().IncTo(pair.Takeovers);
            foreach (var (method, confirmed, count) in pair.Fences)
            {
                fences.WithLabels(method, confirmed ? "confirmed" : "failed").IncTo(count);
            }

            foreach (var reason in reasons)
            {
                refused.WithLabels(reason.ToString().ToLowerInvariant()).IncTo(pair.RefusedFor(reason));
            }
        });
    }

    private static void AddReplication(CollectorRegistry registry, Cluster.ReplicationHost replication)
    {
        var side = registry.CreateGauge("apphb_replication_side", "1 for this node's side of replication: source (active), replica (standby) or idle (taking over, or failed to start).", "side");
        var journaled = registry.CreateGauge("apphb_replication_journaled_records", "The source's last journaled record (NaN on the replica).");
        var acknowledged = registry.CreateGauge("apphb_replication_acknowledged_records", "The last record the peer confirmed applied and durable (NaN on the replica).");
        var lagRecords = registry.CreateGauge("apphb_replication_lag_records", "Records journaled on the source and not yet confirmed by the peer (NaN on the replica).");
        var lagSeconds = registry.CreateGauge("apphb_replication_lag_seconds", "How long the oldest change the peer has not confirmed has waited: what a crash now would lose, in time (NaN on the replica).");
        var lagBytes = registry.CreateGauge("apphb_replication_lag_bytes", "Bytes of the journal the peer has not confirmed (NaN on the replica).");
        var applied = registry.CreateGauge("apphb_replication_applied_records", "The replica's last applied record (NaN on the source).");
        var resyncing = registry.CreateGauge("apphb_replication_resyncing", "1 while a difference resync is due or under way.");
        var resyncSent = registry.CreateGauge("apphb_replication_resync_sent_bytes", "Bytes of the difference resync under way sent so far (NaN when none is).");
        var resyncTotal = registry.CreateGauge("apphb_replication_resync_total_bytes", "Bytes of the difference resync under way in all: what differed (NaN when none is).");
        var resyncPaths = registry.CreateGauge("apphb_replication_last_resync_paths", "Paths the last difference resync compared: those changed while the replica was apart (NaN when it compared the whole tree, or none ran).");
        var sentBytes = registry.CreateGauge("apphb_replication_sent_bytes", "Bytes of messages the source sent to the peer since this source side started (NaN on the replica).");
        var sentCompressed = registry.CreateGauge("apphb_replication_sent_compressed_bytes", "The same bytes as they went on the wire: with compress, smaller by what deflating saved (NaN on the replica).");
        var connections = registry.CreateCounter("apphb_replication_connections_total", "Replication connections since apphbd started.");
        var resyncs = registry.CreateCounter("apphb_replication_resyncs_total", "Difference resyncs this node started as the source since apphbd started.");
        var overflows = registry.CreateGauge("apphb_replication_capture_overflows", "Times the kernel's notification queue overflowed since the source side started; each costs a comparison of the whole tree (NaN on the replica).");
        var verifies = registry.CreateCounter("apphb_replication_verifies_total", "`apphbctl replication verify` runs on this node since apphbd started (a repair counts its second verify too).");
        var verifyDifferences = registry.CreateGauge("apphb_replication_verify_differences", "Paths where the last verify found the replica differing from the active's tree (NaN before any verify).");
        var verifyTime = registry.CreateGauge("apphb_replication_verify_timestamp_seconds", "When the last verify ended, Unix time (NaN before any verify).");
        registry.AddBeforeCollectCallback(() =>
        {
            if (replication.Status() is not { } status)
            {
                return;
            }

            foreach (var s in AppHb.Export.Snmp.ApphbMib.Replication.Sides)
            {
                side.WithLabels(s).Set(status.Side == s ? 1 : 0);
            }

            journaled.Set(status.Journaled ?? double.NaN);
            acknowledged.Set(status.Acknowledged ?? double.NaN);
            lagRecords.Set(status.LagRecords ?? double.NaN);
            lagSeconds.Set(status.LagSeconds ?? double.NaN);
            lagBytes.Set(status.LagBytes ?? double.NaN);
            overflows.Set(status.CaptureOverflows ?? double.NaN);
            applied.Set(status.Applied ?? double.NaN);
            resyncing.Set(status.Resyncing ? 1 : 0);
            resyncSent.Set(status.ResyncSentBytes ?? double.NaN);
            resyncTotal.Set(status.ResyncTotalBytes ?? double.NaN);
            resyncPaths.Set(status.LastResyncPaths ?? double.NaN);
            sentBytes.Set(status.SentBytes ?? double.NaN);
            sentCompressed.Set(status.SentCompressedBytes ?? double.NaN);
            connections.WithLabels().IncTo(status.Connections);
            resyncs.WithLabels().IncTo(status.Resyncs);
            verifies.WithLabels().IncTo(status.LastVerify?.Verifies ?? 0);
            verifyDifferences.Set(status.LastVerify?.Differences ?? double.NaN);
            verifyTime.Set(status.LastVerify is { } v ? v.At.ToUnixTimeMilliseconds() / 1000.0 : double.NaN);
        });
    }

    public void Dispose() => _events.Dispose();
}
