using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>APPHB-MIB through a real snmpd (AgentX master on a private socket, agent on a loopback port) read with
/// net-snmp's own tools, v2c and v3 authPriv; notifications received by a real snmptrapd.</summary>
public sealed class SnmpTests
{
    private const string Enterprise = ".1.3.6.1.4.1.32473";

    private static async Task<DaemonProcess> StartDaemonAsync(NetSnmp snmp, string services = """
        services:
          worker:
            command: [/bin/sleep, "1000"]
        """)
    {
        var daemon = await DaemonProcess.StartAsync($"""
            snmp:
              agentx: {snmp.AgentX}
            {services}
            """, realtime: false);
        await daemon.WaitForLineAsync("SNMP: registered", TimeSpan.FromSeconds(20));
        return daemon;
    }

    /// <summary>Reads <paramref name="oid"/> until it says <paramref name="expected"/>: the MIB answers from a snapshot
    /// at most a second old, so what apphbd just learnt shows within about a second, later on a busy machine.</summary>
    private static async Task WaitForValueAsync(NetSnmp snmp, string oid, string expected)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        string value;
        while ((value = (await snmp.ToolAsync("snmpget", [.. NetSnmp.V2c, "-Oqv"], oid)).Trim()) != expected)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"{oid} is still \"{value}\", expected \"{expected}\"");
            await Task.Delay(100);
        }
    }

    /// <summary>"APPHB-MIB::apphbServiceName.1 = STRING: worker" lines as (object, index) -> value.</summary>
    private static Dictionary<(string Name, string Index), string> Parse(string walk)
    {
        var values = new Dictionary<(string, string), string>();
        foreach (Match m in Regex.Matches(walk, @"^APPHB-MIB::(\w+)\.(\d+) = (?:[\w-]+: )?(.*)$", RegexOptions.Multiline))
        {
            values[(m.Groups[1].Value, m.Groups[2].Value)] = m.Groups[3].Value.Trim();
        }

        return values;
    }

    [Fact]
    public async Task Snmpwalk_snmpget_and_snmpbulkwalk_v2c_and_v3_show_what_apphbctl_status_shows()
    {
        await using var snmp = await NetSnmp.StartAsync();
        await using var daemon = await StartDaemonAsync(snmp);
        await using var client = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "orders", Interval = TimeSpan.FromSeconds(30) });
        await client.RegisterAsync();
        var control = new AppHbControl(daemon.SocketPath);
        var status = await control.GetStatusAsync();
        var worker = status.Services.Single();
        var orders = status.Clients.Single();
        // The MIB answers from a snapshot at most a second old: the registration must be in it.
        await WaitForValueAsync(snmp, "APPHB-MIB::apphbDaemonClients.0", "1 clients");

        var walk = Parse(await snmp.ToolAsync("snmpwalk", NetSnmp.V2c, "APPHB-MIB::apphbMIB"));
        Assert.Equal("worker", walk[("apphbServiceName", "1")]);
        Assert.Equal("running(3)", walk[("apphbServiceState", "1")]);
        Assert.Equal(worker.Pid!.Value.ToString(CultureInfo.InvariantCulture), walk[("apphbServicePid", "1")]);
        Assert.Equal("true(1)", walk[("apphbServiceWanted", "1")]);
        Assert.Equal("false(2)", walk[("apphbServiceCritical", "1")]);
        Assert.Equal(worker.Restarts.ToString(CultureInfo.InvariantCulture), walk[("apphbServiceRestarts", "1")]);
        var row = orders.Id.ToString(CultureInfo.InvariantCulture);
        Assert.Equal("orders", walk[("apphbClientName", row)]);
        Assert.Equal(orders.Pid.ToString(CultureInfo.InvariantCulture), walk[("apphbClientPid", row)]);
        Assert.Equal("healthy(1)", walk[("apphbClientState", row)]);
        Assert.Equal("30000 milliseconds", walk[("apphbClientInterval", row)]);
        Assert.Equal(status.Watchdog.Backend, walk[("apphbWatchdogBackend", "0")]);
        Assert.Equal("5 seconds", walk[("apphbWatchdogTimeout", "0")]);
        Assert.Equal(daemon.Pid.ToString(CultureInfo.InvariantCulture), walk[("apphbDaemonPid", "0")]);
        Assert.Equal("1 clients", walk[("apphbDaemonClients", "0")]);
        Assert.Equal("0 clients", walk[("apphbDaemonClientsHung", "0")]);
        Assert.Equal("0 services", walk[("apphbDaemonServicesDown", "0")]);
        Assert.Equal(status.Daemon.Version, walk[("apphbDaemonVersion", "0")]);

        var get = await snmp.ToolAsync("snmpget", [.. NetSnmp.V2c, "-Oqv"], "APPHB-MIB::apphbDaemonPid.0", "APPHB-MIB::apphbServiceName.1");
        Assert.Equal([daemon.Pid.ToString(CultureInfo.InvariantCulture), "worker"], get.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
        var missing = await snmp.ToolAsync("snmpget", NetSnmp.V2c, "APPHB-MIB::apphbServiceName.99", "APPHB-MIB::apphbDaemonPid.1");
        Assert.Contains("apphbServiceName.99 = No Such Instance", missing, StringComparison.Ordinal);
        Assert.Contains("apphbDaemonPid.1 = No Such Instance", missing, StringComparison.Ordinal);

        // SNMPv1 too (snmpd's business: it maps the versions; v1 has no Counter64, which snmpd leaves out of v1 walks).
        var v1 = Parse(await snmp.ToolAsync("snmpwalk", ["-v1", "-c", NetSnmp.Community], "APPHB-MIB::apphbServiceTable"));
        Assert.Equal(walk[("apphbServiceName", "1")], v1[("apphbServiceName", "1")]);
        Assert.Equal(walk[("apphbServicePid", "1")], v1[("apphbServicePid", "1")]);

        // v3 with authentication and privacy: snmpd's security, our values; and GetBulk end to end.
        var bulk = Parse(await snmp.ToolAsync("snmpbulkwalk", [.. NetSnmp.V3AuthPriv, "-Cr7"], "APPHB-MIB::apphbMIB"));
        Assert.Equal(walk.Keys.Order().ToList(), bulk.Keys.Order().ToList());
        foreach (var key in walk.Keys.Where(k => k.Name is "apphbServiceName" or "apphbServicePid" or "apphbClientName" or "apphbClientPid" or "apphbDaemonPid"))
        {
            Assert.Equal(walk[key], bulk[key]);
        }

        // The subagent reports on itself in /metrics: registered, and one request per varbind walked so far.
        var metricsUrl = System.Text.RegularExpressions.Regex.Match(await daemon.WaitForLineAsync("Prometheus scrapes", TimeSpan.FromSeconds(5)), @"http://\S+/metrics").Value;
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(new Uri(metricsUrl));
        Assert.Contains("\napphb_snmp_registered 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\napphb_snmp_registrations_total 1\n", metrics, StringComparison.Ordinal);
        var requests = long.Parse(Regex.Match(metrics, @"\napphb_snmp_requests_total (\d+)\n").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(requests >= walk.Count + bulk.Count, $"{requests} AgentX requests for {walk.Count + bulk.Count} varbinds walked");

        // A v2c walk of a read-only community may not set: snmpd refuses before it reaches us, and the value stays.
        await Assert.ThrowsAsync<InvalidOperationException>(() => snmp.ToolAsync("snmpset", NetSnmp.V2c, "APPHB-MIB::apphbServiceName.1", "s", "renamed"));
        Assert.Contains("worker", await snmp.ToolAsync("snmpget", NetSnmp.V2c, "APPHB-MIB::apphbServiceName.1"), StringComparison.Ordinal);
    }

    /// <summary>The way docs/benchmarks.md tells pollers to read a large table through net-snmp: a GetNext of every
    /// column, which snmpd hands to the subagent as one AgentX GetNext per row (it splits a GetBulk into one per cell).</summary>
    [Fact]
    public async Task A_table_read_by_GetNext_of_every_column_costs_one_AgentX_request_per_row()
    {
        await using var snmp = await NetSnmp.StartAsync();
        await using var daemon = await StartDaemonAsync(snmp);
        var clients = new List<HeartbeatClient>();
        try
        {
            foreach (var name in new[] { "alpha", "beta", "gamma" })
            {
                var client = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = name, Interval = TimeSpan.FromSeconds(30) });
                clients.Add(client);
                await client.RegisterAsync();
            }

            await WaitForValueAsync(snmp, "APPHB-MIB::apphbDaemonClients.0", "3 clients");
            var metricsUrl = new Uri(Regex.Match(await daemon.WaitForLineAsync("Prometheus scrapes", TimeSpan.FromSeconds(5)), @"http://\S+/metrics").Value);
            using var http = new HttpClient();
            async Task<long> RequestsAsync() =>
                long.Parse(Regex.Match(await http.GetStringAsync(metricsUrl), @"\napphb_snmp_requests_total (\d+)\n").Groups[1].Value, CultureInfo.InvariantCulture);

            var before = await RequestsAsync();
            var table = await snmp.ToolAsync("snmptable", [.. NetSnmp.V2c, "-CB", "-Cf", ",", "-CH"], "APPHB-MIB::apphbClientTable");
            var after = await RequestsAsync();
            var rows = table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(',')[0]).ToList();
            Assert.Equal(["alpha", "beta", "gamma"], rows);
            // Three rows and the GetNext that finds the table's end.
            Assert.Equal(4, after - before);
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AgentX_over_TCP_serves_the_same_MIB()
    {
        await using var snmp = await NetSnmp.StartAsync(tcp: true);
        Assert.StartsWith("tcp:127.0.0.1:", snmp.AgentX, StringComparison.Ordinal);
        await using var daemon = await StartDaemonAsync(snmp);
        Assert.Contains($"master agent at {snmp.AgentX}", await daemon.WaitForLineAsync("SNMP: registered", TimeSpan.FromSeconds(5)), StringComparison.Ordinal);
        var values = await snmp.ToolAsync("snmpget", [.. NetSnmp.V2c, "-Oqv"], "APPHB-MIB::apphbDaemonPid.0", "APPHB-MIB::apphbServiceName.1");
        Assert.Equal([daemon.Pid.ToString(CultureInfo.InvariantCulture), "worker"], values.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
    }

    [Fact]
    public async Task A_killed_service_and_a_hung_client_reach_snmptrapd_as_notifications()
    {
        await using var snmp = await NetSnmp.StartAsync();
        await using var daemon = await StartDaemonAsync(snmp);
        var control = new AppHbControl(daemon.SocketPath);
        var pid = (await control.GetStatusAsync()).Services.Single().Pid!.Value;
        Assert.True(ProcessRunner.Signal(pid, 9));

        var failed = await snmp.WaitForTrapAsync(TimeSpan.FromSeconds(10), $"= OID: {Enterprise}.0.1", "\"worker\"");
        Assert.Contains($"{Enterprise}.1.3.1.8.1 = STRING: \"signal 9 (SIGKILL)\"", failed, StringComparison.Ordinal);
        Assert.Contains($"{Enterprise}.1.5.1.0 = STRING: \"service worker (pid {pid}): exited unexpectedly", failed, StringComparison.Ordinal);
        var restarted = await snmp.WaitForTrapAsync(TimeSpan.FromSeconds(10), $"= OID: {Enterprise}.0.2", "\"worker\"");
        Assert.Contains($"{Enterprise}.1.3.1.7.1 = Counter32: 1", restarted, StringComparison.Ordinal);

        await using var stuck = new HeartbeatClient(new HeartbeatClientOptions { SocketPath = daemon.SocketPath, Name = "stuck", Interval = TimeSpan.FromMilliseconds(300), WarnTime = TimeSpan.FromMilliseconds(200) });
        await stuck.RegisterAsync();
        var id = stuck.Registration!.ClientId;
        var hung = await snmp.WaitForTrapAsync(TimeSpan.FromSeconds(10), $"= OID: {Enterprise}.0.4", "\"stuck\"");
        Assert.Contains($"{Enterprise}.1.4.1.4.{id} = Gauge32: {Environment.ProcessId}", hung, StringComparison.Ordinal);
        Assert.Contains("is hung: no heartbeat", hung, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_snmpd_restarts_the_subagent_registers_again_and_delivers_what_happened_meanwhile()
    {
        await using var snmp = await NetSnmp.StartAsync();
        await using var daemon = await StartDaemonAsync(snmp);
        var skip = daemon.Lines.Count;
        await snmp.StopSnmpdAsync();
        await daemon.WaitForLineAsync("SNMP: session with", TimeSpan.FromSeconds(10), skip);

        // Killed while snmpd is away: the notification waits in apphbd's queue.
        var control = new AppHbControl(daemon.SocketPath);
        Assert.True(ProcessRunner.Signal((await control.GetStatusAsync()).Services.Single().Pid!.Value, 9));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while ((await control.GetStatusAsync()).Services.Single().Restarts == 0)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the kill was never noticed");
            await Task.Delay(50);
        }

        // apphbd has noticed (and queued the notification); snmpd is down, so nothing reached snmptrapd.
        Assert.DoesNotContain(snmp.Traps(), t => t.Contains(Enterprise, StringComparison.Ordinal));

        skip = daemon.Lines.Count;
        await snmp.StartSnmpdAsync();
        await daemon.WaitForLineAsync("SNMP: registered", TimeSpan.FromSeconds(30), skip);
        var pid = await snmp.ToolAsync("snmpget", [.. NetSnmp.V2c, "-Oqv"], "APPHB-MIB::apphbDaemonPid.0");
        Assert.Equal(daemon.Pid.ToString(CultureInfo.InvariantCulture), pid.Trim());
        await snmp.WaitForTrapAsync(TimeSpan.FromSeconds(10), $"= OID: {Enterprise}.0.1", "\"worker\"");
    }

    [Fact]
    public async Task A_malformed_PDU_from_the_master_is_answered_with_parseError_and_the_session_goes_on()
    {
        using var directory = new TempDirectory();
        var path = directory.File("master.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        await using var daemon = await DaemonProcess.StartAsync($"snmp:\n  agentx: unix:{path}\n", realtime: false);
        using var master = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(20));

        var open = await ReceiveAsync(master);
        Assert.Equal(1, open.Type); // Open-PDU
        await master.SendAsync(Pdu(18, 42, open.PacketId, [0, 0, 0, 0, 0, 0, 0, 0]));
        var register = await ReceiveAsync(master);
        Assert.Equal(3, register.Type); // Register-PDU, for the enterprise subtree
        Assert.Equal(42u, register.SessionId);
        await master.SendAsync(Pdu(18, 42, register.PacketId, [0, 0, 0, 0, 0, 0, 0, 0]));
        await daemon.WaitForLineAsync("SNMP: registered", TimeSpan.FromSeconds(10));

        // A Get whose OID says 9 sub-identifiers and carries 2: the header frames it, its payload is wrong.
        byte[] truncated = [9, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0x7e, 0xd9, 0, 0, 0, 0];
        await master.SendAsync(Pdu(5, 42, 1000, truncated));
        var refused = await ReceiveAsync(master);
        Assert.Equal((18, 1000u), (refused.Type, refused.PacketId));
        Assert.Equal(266, BinaryPrimitives.ReadUInt16BigEndian(refused.Payload.AsSpan(4))); // parseError
        var logged = await daemon.WaitForLineAsync("Get-PDU", TimeSpan.FromSeconds(5));
        Assert.Contains("sub-identifier at offset 16", logged, StringComparison.Ordinal);

        // The same session still answers: Get apphbDaemonPid.0 (1.3.6.1.4.1.32473.1.1.2.0, prefix 4).
        byte[] get = [6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0x7e, 0xd9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        await master.SendAsync(Pdu(5, 42, 1001, get));
        var answer = await ReceiveAsync(master);
        Assert.Equal((18, 1001u), (answer.Type, answer.PacketId));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(answer.Payload.AsSpan(4)));
        // The varbind: type Gauge32 (66), the name (4 + 6*4 bytes), then the value.
        Assert.Equal(66, BinaryPrimitives.ReadUInt16BigEndian(answer.Payload.AsSpan(8)));
        Assert.Equal((uint)daemon.Pid, BinaryPrimitives.ReadUInt32BigEndian(answer.Payload.AsSpan(8 + 4 + 4 + 24)));
        Assert.True(daemon.IsRunning);
    }

    private static byte[] Pdu(byte type, uint session, uint packet, byte[] payload)
    {
        var bytes = new byte[20 + payload.Length];
        bytes[0] = 1;
        bytes[1] = type;
        bytes[2] = 0x10; // network byte order
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), session);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), packet);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), packet);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(16), (uint)payload.Length);
        payload.CopyTo(bytes, 20);
        return bytes;
    }

    private static async Task<(byte Type, uint SessionId, uint PacketId, byte[] Payload)> ReceiveAsync(Socket socket)
    {
        var header = new byte[20];
        await ReadAsync(socket, header);
        Assert.Equal(0x10, header[2] & 0x10);
        var payload = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16))];
        await ReadAsync(socket, payload);
        return (header[1], BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), payload);
    }

    private static async Task ReadAsync(Socket socket, Memory<byte> buffer)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!buffer.IsEmpty)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.NotEqual(0, read);
            buffer = buffer[read..];
        }
    }
}
