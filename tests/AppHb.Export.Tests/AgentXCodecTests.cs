using AppHb.Export.Snmp;
using AppHb.Export.Snmp.AgentX;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Export.Tests;

/// <summary>AgentX PDUs as bytes (RFC 2741 sections 5 and 6): golden encodings, round trips in both byte orders, and
/// precise errors for what does not parse.</summary>
public sealed class AgentXCodecTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    private static AgentXPdu Decode(byte[] bytes)
    {
        var header = AgentXReader.ReadHeader(bytes);
        Assert.Equal(bytes.Length - AgentXHeader.Size, (int)header.PayloadLength);
        return AgentXReader.ReadPdu(header, bytes.AsSpan(AgentXHeader.Size));
    }

    [Fact]
    public void Open_is_encoded_as_RFC_2741_lays_it_out()
    {
        var bytes = AgentXWriter.Encode(new OpenPdu(5, ObjectIdentifier.Null, "ab") { TransactionId = 7, PacketId = 7 });
        Assert.Equal(Hex(
            "01 01 10 00  00000000  00000007  00000007  00000010" + // version, Open, network byte order; ids; length 16
            "05 000000" +                                          // o.timeout, reserved
            "00 00 00 00" +                                        // o.id: the null OID
            "00000002 6162 0000"),                                 // o.descr, padded to 4
            bytes);
    }

    [Fact]
    public void Register_abbreviates_the_internet_prefix()
    {
        var bytes = AgentXWriter.Encode(new RegisterPdu(0, 127, ObjectIdentifier.Parse("1.3.6.1.4.1.32473")) { SessionId = 42, TransactionId = 2, PacketId = 2 });
        Assert.Equal(Hex(
            "01 03 10 00  0000002a  00000002  00000002  00000010" +
            "00 7f 00 00" +                  // r.timeout, r.priority 127, r.range_subid, reserved
            "02 04 00 00 00000001 00007ed9"), // 2 sub-identifiers after 1.3.6.1.4: 1.32473
            bytes);
    }

    [Fact]
    public void A_little_endian_response_with_every_value_type_decodes()
    {
        // As a master on a little-endian host may send it: NETWORK_BYTE_ORDER clear.
        var response = new ResponsePdu(1234, AgentXError.NoError, 0,
        [
            new(ObjectIdentifier.Parse("1.3.6.1.2.1.1.1.0"), new OctetString("linux")),
            new(ObjectIdentifier.Parse("1.3.6.1.2.1.1.3.0"), new TimeTicks(99)),
            new(ObjectIdentifier.Parse("1.3.6.1.2.1.1.2.0"), ObjectIdentifier.Parse("1.3.6.1.4.1.8072.3.2.10")),
            new(ObjectIdentifier.Parse("1.3.6.1.4.1.32473.1.2.6.0"), new Counter64(ulong.MaxValue)),
            new(ObjectIdentifier.Parse("1.3.6.1.4.1.32473.1.3.1.3.1"), new Integer32(-5)),
            new(ObjectIdentifier.Parse("1.3.6.1.4.1.32473.1.3.1.7.1"), new Counter32(3)),
            new(ObjectIdentifier.Parse("1.3.6.1.4.1.32473.1.3.1.5.1"), new Gauge32(77)),
            new(ObjectIdentifier.Parse("2.999"), SnmpException.NoSuchObject),
            new(ObjectIdentifier.Parse("2.999.1"), SnmpException.EndOfMibView),
        ]) { SessionId = 3, TransactionId = 4, PacketId = 5 };
        var bytes = AgentXWriter.Encode(response, networkByteOrder: false);
        Assert.Equal(0, bytes[2] & 0x10);
        Assert.Equal(18, bytes[1]);
        Assert.Equal(new byte[] { 3, 0, 0, 0 }, bytes[4..8]);
        var decoded = Assert.IsType<ResponsePdu>(Decode(bytes));
        Assert.Equal(response.Variables, decoded.Variables);
        Assert.Equal((1234u, 3u, 4u, 5u), (decoded.SysUpTime, decoded.SessionId, decoded.TransactionId, decoded.PacketId));
    }

    private static readonly Gen<ObjectIdentifier> Oids =
        from length in Gen.Choose(0, 20)
        from prefix in Gen.Elements(Array.Empty<uint>(), [1u, 3, 6, 1], [1u, 3, 6, 1, 4, 1, 32473], [1u, 3, 6, 1, 0], [1u, 3, 6, 1, 256])
        from rest in Gen.ArrayOf(ArbMap.Default.GeneratorFor<uint>(), length)
        select new ObjectIdentifier([.. prefix, .. rest]);

    private static readonly Gen<ISnmpData> Values = Gen.OneOf(
        ArbMap.Default.GeneratorFor<int>().Select(v => (ISnmpData)new Integer32(v)),
        ArbMap.Default.GeneratorFor<uint>().Select(v => (ISnmpData)new Gauge32(v)),
        ArbMap.Default.GeneratorFor<uint>().Select(v => (ISnmpData)new Counter32(v)),
        ArbMap.Default.GeneratorFor<uint>().Select(v => (ISnmpData)new TimeTicks(v)),
        ArbMap.Default.GeneratorFor<ulong>().Select(v => (ISnmpData)new Counter64(v)),
        Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>()).Select(v => (ISnmpData)new OctetString(v)),
        Oids.Select(v => (ISnmpData)v),
        Gen.Elements<ISnmpData>(SnmpException.Null, SnmpException.NoSuchObject, SnmpException.NoSuchInstance, SnmpException.EndOfMibView));

    private static readonly Gen<SearchRange> Ranges =
        from start in Oids from include in ArbMap.Default.GeneratorFor<bool>() from end in Oids select new SearchRange(start, include, end);

    private static readonly Gen<AgentXPdu> Pdus = Gen.OneOf(
        from next in ArbMap.Default.GeneratorFor<bool>() from ranges in Gen.ListOf(Ranges) select (AgentXPdu)new GetPdu(next, ranges),
        from n in ArbMap.Default.GeneratorFor<ushort>() from m in ArbMap.Default.GeneratorFor<ushort>() from ranges in Gen.ListOf(Ranges)
        select (AgentXPdu)new GetBulkPdu(n, m, ranges),
        from variables in Gen.ListOf(from id in Oids from v in Values select new Variable(id, v))
        from kind in Gen.Elements(AgentXPduType.Notify, AgentXPduType.TestSet)
        select (AgentXPdu)new VariablesPdu(kind, variables),
        from variables in Gen.ListOf(from id in Oids from v in Values select new Variable(id, v))
        from error in Gen.Elements(Enum.GetValues<AgentXError>()) from index in ArbMap.Default.GeneratorFor<ushort>()
        select (AgentXPdu)new ResponsePdu(0, error, index, variables),
        from subtree in Oids from priority in ArbMap.Default.GeneratorFor<byte>() from unregister in ArbMap.Default.GeneratorFor<bool>()
        select (AgentXPdu)new RegisterPdu(unregister ? (byte)0 : (byte)5, priority, subtree, 0, 0, unregister),
        from reason in Gen.Elements(Enum.GetValues<AgentXCloseReason>()) select (AgentXPdu)new ClosePdu(reason));

    [Fact]
    public void Every_PDU_round_trips_in_either_byte_order_with_or_without_a_context() => Prop.ForAll(
        Arb.From(from pdu in Pdus from big in ArbMap.Default.GeneratorFor<bool>() from ids in ArbMap.Default.GeneratorFor<(uint, uint, uint)>()
                 from context in Gen.Elements<byte[]?>(null, [], "ctx"u8.ToArray())
                 select (pdu: pdu with { SessionId = ids.Item1, TransactionId = ids.Item2, PacketId = ids.Item3, Context = AgentXWriterContext(pdu, context) }, big)),
        t =>
        {
            var decoded = Decode(AgentXWriter.Encode(t.pdu, t.big));
            return Same(t.pdu, decoded);
        }).QuickCheckThrowOnFailure();

    private static byte[]? AgentXWriterContext(AgentXPdu pdu, byte[]? context) => pdu is ClosePdu or ResponsePdu ? null : context;

    private static bool Same(AgentXPdu expected, AgentXPdu actual)
    {
        if (expected.GetType() != actual.GetType() || expected.SessionId != actual.SessionId || expected.PacketId != actual.PacketId
            || expected.TransactionId != actual.TransactionId || !(expected.Context ?? []).SequenceEqual(actual.Context ?? []) || (expected.Context is null) != (actual.Context is null))
        {
            return false;
        }

        return (expected, actual) switch
        {
            (GetPdu e, GetPdu a) => e.Next == a.Next && e.Ranges.SequenceEqual(a.Ranges),
            (GetBulkPdu e, GetBulkPdu a) => e.NonRepeaters == a.NonRepeaters && e.MaxRepetitions == a.MaxRepetitions && e.Ranges.SequenceEqual(a.Ranges),
            (VariablesPdu e, VariablesPdu a) => e.Kind == a.Kind && e.Variables.SequenceEqual(a.Variables),
            (ResponsePdu e, ResponsePdu a) => e.Error == a.Error && e.Index == a.Index && e.Variables.SequenceEqual(a.Variables),
            (RegisterPdu e, RegisterPdu a) => e == a with { SessionId = e.SessionId, TransactionId = e.TransactionId, PacketId = e.PacketId, Context = e.Context },
            (ClosePdu e, ClosePdu a) => e.Reason == a.Reason,
            _ => false,
        };
    }

    [Fact]
    public void Any_truncation_of_a_valid_payload_is_a_parse_error_naming_the_PDU_never_another_exception() => Prop.ForAll(
        Arb.From(from pdu in Pdus from cut in Gen.Choose(1, 400) select (pdu, cut)),
        t =>
        {
            var bytes = AgentXWriter.Encode(t.pdu);
            var payload = bytes.AsSpan(AgentXHeader.Size).ToArray();
            if (payload.Length == 0)
            {
                return true;
            }

            var header = AgentXReader.ReadHeader(bytes) with { PayloadLength = 0 };
            var cut = payload.Length - (t.cut % payload.Length) - 1;
            try
            {
                AgentXReader.ReadPdu(header, payload.AsSpan(0, cut));
                // A cut on an item boundary of a list (ranges, varbinds) is a shorter valid PDU.
                return t.pdu is GetPdu or GetBulkPdu or VariablesPdu or ResponsePdu;
            }
            catch (AgentXParseException e)
            {
                return e.Message.Contains($"{t.pdu.Type}-PDU", StringComparison.Ordinal);
            }
        }).QuickCheckThrowOnFailure();

    [Theory]
    [InlineData("02 05 10 00 00000000 00000000 00000000 00000000", "version 2")]
    [InlineData("01 63 10 00 00000000 00000000 00000000 00000000", "unknown PDU type 99")]
    [InlineData("01 05 10 00 00000000 00000000 00000000 00000003", "payload length 3")]
    [InlineData("01 05 10 00 00000000 00000000 00000000 7fffff00", "payload length 2147483392")]
    public void A_bad_header_says_what_is_wrong(string hex, string expected)
    {
        var e = Assert.Throws<AgentXParseException>(() => AgentXReader.ReadHeader(Hex(hex)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_varbind_of_an_unknown_type_names_its_OID()
    {
        var payload = Hex("00000000 0000 0000" + "0063 0000 01 00 00 00 0000002a");
        var header = new AgentXHeader(AgentXPduType.Response, AgentXFlags.NetworkByteOrder, 0, 0, 0, (uint)payload.Length);
        var e = Assert.Throws<AgentXParseException>(() => AgentXReader.ReadPdu(header, payload));
        Assert.Equal("AgentX Response-PDU: VarBind 42 has unknown type 99", e.Message);
    }

    [Fact]
    public void An_OID_longer_than_128_sub_identifiers_is_refused()
    {
        var payload = Hex("ff 00 00 00");
        var header = new AgentXHeader(AgentXPduType.Get, AgentXFlags.NetworkByteOrder, 0, 0, 0, 4);
        var e = Assert.Throws<AgentXParseException>(() => AgentXReader.ReadPdu(header, payload));
        Assert.Contains("255 sub-identifiers", e.Message, StringComparison.Ordinal);
    }
}
