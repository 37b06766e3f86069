using System.Net.Sockets;
using AppHb.Export.Snmp;
using AppHb.Export.Snmp.AgentX;

namespace AppHb.Export.Tests;

/// <summary>The subagent's framing over a real Unix stream socket: PDUs arrive however the master's writes and the
/// kernel cut them (several in one read, one split over many), and each comes out whole and in order.</summary>
public sealed class AgentXInboxTests : IDisposable
{
    private readonly Socket _master;
    private readonly Socket _subagent;

    public AgentXInboxTests()
    {
        var path = Path.Combine(Path.GetTempPath(), $"apphb-inbox-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        _subagent = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _subagent.Connect(new UnixDomainSocketEndPoint(path));
        _master = listener.Accept();
        File.Delete(path);
    }

    private static byte[] GetNext(uint packet, string oid) =>
        AgentXWriter.Encode(new GetPdu(true, [new(ObjectIdentifier.Parse(oid), false, ObjectIdentifier.Null)]) { SessionId = 9, PacketId = packet });

    private static (uint Packet, string Oid) Decode(AgentXHeader header, ReadOnlySpan<byte> payload)
    {
        var pdu = (GetPdu)AgentXReader.ReadPdu(header, payload);
        return (pdu.PacketId, pdu.Ranges[0].Start.ToString());
    }

    [Fact]
    public async Task Pdus_sent_together_and_split_byte_by_byte_come_out_whole_and_in_order()
    {
        var first = GetNext(1, "1.3.6.1.4.1.32473.1");
        var second = GetNext(2, "1.3.6.1.4.1.32473.2.1.5");
        var third = GetNext(3, "1.3.6.1.4.1.32473.3.1.2.7");
        _master.Send([.. first, .. second, .. third[..7]]);
        var inbox = new AgentXInbox(TimeSpan.FromMicroseconds(200));

        var header = inbox.ReceiveNext(_subagent, expectSoon: false, out var payload);
        Assert.Equal((1u, "1.3.6.1.4.1.32473.1"), Decode(header, payload));
        header = inbox.ReceiveNext(_subagent, expectSoon: true, out payload);
        Assert.Equal((2u, "1.3.6.1.4.1.32473.2.1.5"), Decode(header, payload));

        // The rest of the third one trickles in a byte at a time while the inbox waits for it.
        var writer = Task.Run(async () =>
        {
            foreach (var b in third[7..])
            {
                _master.Send([b]);
                await Task.Delay(1);
            }
        });
        header = inbox.ReceiveNext(_subagent, expectSoon: true, out payload);
        Assert.Equal((3u, "1.3.6.1.4.1.32473.3.1.2.7"), Decode(header, payload));
        await writer;
    }

    [Fact]
    public void A_pdu_larger_than_its_buffer_grows_it()
    {
        var big = AgentXWriter.Encode(new GetPdu(true, Enumerable.Range(0, 400).Select(i => new SearchRange(ObjectIdentifier.Parse($"1.3.6.1.4.1.32473.1.{i}"), false, ObjectIdentifier.Null)).ToList()) { PacketId = 4 });
        Assert.True(big.Length > 8192);
        _master.Send(big);
        var header = new AgentXInbox(TimeSpan.Zero).ReceiveNext(_subagent, expectSoon: false, out var payload);
        Assert.Equal(400, ((GetPdu)AgentXReader.ReadPdu(header, payload)).Ranges.Count);
    }

    [Fact]
    public void An_absurd_payload_length_ends_the_session_with_the_reason()
    {
        var bytes = GetNext(5, "1.3.6.1.4.1.32473.1");
        bytes[16] = 0x7f; // payload length, network byte order: 2 GB
        _master.Send(bytes);
        var e = Assert.Throws<AgentXParseException>(() => new AgentXInbox(TimeSpan.Zero).ReceiveNext(_subagent, expectSoon: false, out _));
        Assert.Contains("GetNext-PDU: payload length 2130706452", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_master_that_closes_mid_pdu_ends_the_session()
    {
        _master.Send(GetNext(6, "1.3.6.1.4.1.32473.1")[..10]);
        _master.Shutdown(SocketShutdown.Send);
        var e = Assert.Throws<IOException>(() => new AgentXInbox(TimeSpan.FromMicroseconds(200)).ReceiveNext(_subagent, expectSoon: true, out _));
        Assert.Contains("closed", e.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _master.Dispose();
        _subagent.Dispose();
    }
}
