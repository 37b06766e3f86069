using AppHb.Daemon.Export;
using AppHb.Export.Snmp;
using AppHb.Export.Snmp.AgentX;
using AppHb.Protocol;

namespace AppHb.Daemon.Tests;

/// <summary>snmpd sends one AgentX GetNext per varbind, so a walk of 1,000 clients is 8,000 requests, and what each
/// allocates is what the collector must clear while apphbd's managed realtime threads wait. A budget, not a timing:
/// allocation counts are exact.</summary>
public sealed class AgentXAllocationTests
{
    [Fact]
    public void A_walk_of_1000_clients_allocates_under_a_kilobyte_per_request_and_nothing_to_encode()
    {
        var clients = Enumerable.Range(1, 1000).Select(i => new ClientStatus((ulong)i, "client" + i, "", 100 + i, 0, 0, 1000, 500, 12.3, "healthy", 10)).ToList();
        var services = Enumerable.Range(1, 50).Select(i => new ServiceStatus("svc" + i, "running", true, 200, false, true, 3.2, 1, "signal 9 (SIGKILL)", null, null, [], [])).ToList();
        var doc = new StatusDocument(new DaemonStatus("1.2.3", 4242, DateTimeOffset.UnixEpoch, 12.5, true, "fifo", 2, 0.2, 1.5, 1000, 2000, 3),
            new WatchdogStatus("linux", "/dev/watchdog0", "i6300ESB timer", 30, 10, 25, 120, 7, 1, true, ["CardReset"], 0.1, 0.3), clients, services);
        var mib = new StatusMib(() => doc, Configuration.ConfigurationLoader.Load("", "t"), TimeProvider.System);
        var store = mib.Build(doc);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
        var request = new System.Buffers.ArrayBufferWriter<byte>(4096);
        long parse = 0, answer = 0, encode = 0; var n = 0;
        var start = ApphbMib.Root;
        while (true)
        {
            request.ResetWrittenCount();
            AgentXWriter.Encode(new GetPdu(true, [new SearchRange(start, false, ObjectIdentifier.Null)]) { PacketId = 1 }, request);
            var a0 = GC.GetAllocatedBytesForCurrentThread();
            var header = AgentXReader.ReadHeader(request.WrittenSpan);
            var pdu = AgentXReader.ReadPdu(header, request.WrittenSpan[20..]);
            var a1 = GC.GetAllocatedBytesForCurrentThread();
            var reply = AgentXResponder.Answer(pdu, store)!;
            var a2 = GC.GetAllocatedBytesForCurrentThread();
            buffer.ResetWrittenCount();
            AgentXWriter.Encode(reply, buffer);
            var a3 = GC.GetAllocatedBytesForCurrentThread();
            parse += a1 - a0; answer += a2 - a1; encode += a3 - a2; n++;
            var v = reply.Variables[0];
            if (v.Data is SnmpException) break;
            start = v.Id;
        }

        Assert.Equal(1 + 18 + (50 * 9) + (1000 * 8), n);
        Assert.Equal(0, encode);
        Assert.True((parse + answer) / n < 1024, $"{n} requests: parse {parse / n} B, answer {answer / n} B each");
    }
}
