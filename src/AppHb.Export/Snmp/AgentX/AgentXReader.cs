using System.Buffers.Binary;

namespace AppHb.Export.Snmp.AgentX;

/// <summary>Decodes PDUs. Every failure is an <see cref="AgentXParseException"/> naming the PDU, the field and its
/// offset; nothing the master sends can make it read outside the payload.</summary>
public static class AgentXReader
{
    /// <summary>Larger payloads are refused: a full GetBulk answer from snmpd's side is a few kilobytes.</summary>
    public const int MaxPayload = 1 << 20;

    public static AgentXHeader ReadHeader(ReadOnlySpan<byte> header)
    {
        if (header.Length < AgentXHeader.Size)
        {
            throw new AgentXParseException($"AgentX header: {header.Length} bytes, {AgentXHeader.Size} needed");
        }

        if (header[0] != AgentXHeader.Version)
        {
            throw new AgentXParseException($"AgentX header: version {header[0]}, only version {AgentXHeader.Version} is defined (RFC 2741)");
        }

        var type = (AgentXPduType)header[1];
        if (type is < AgentXPduType.Open or > AgentXPduType.Response)
        {
            throw new AgentXParseException($"AgentX header: unknown PDU type {header[1]}");
        }

        var flags = (AgentXFlags)header[2];
        var big = (flags & AgentXFlags.NetworkByteOrder) != 0;
        var length = U32(header, 16, big);
        if (length > MaxPayload || length % 4 != 0)
        {
            throw new AgentXParseException($"AgentX {type}-PDU: payload length {length} is not a multiple of 4 up to {MaxPayload}");
        }

        return new AgentXHeader(type, flags, U32(header, 4, big), U32(header, 8, big), U32(header, 12, big), length);
    }

    private static uint U32(ReadOnlySpan<byte> bytes, int at, bool bigEndian) =>
        bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(bytes[at..]) : BinaryPrimitives.ReadUInt32LittleEndian(bytes[at..]);

    public static AgentXPdu ReadPdu(AgentXHeader header, ReadOnlySpan<byte> payload)
    {
        var r = new Reader(payload, header.NetworkByteOrder, header.Type);
        byte[]? context = null;
        if ((header.Flags & AgentXFlags.NonDefaultContext) != 0 && AgentXWriter.CarriesContext(header.Type))
        {
            context = r.OctetString("context").ToArray();
        }

        AgentXPdu pdu;
        switch (header.Type)
        {
            case AgentXPduType.Open:
            {
                var timeout = r.Byte("o.timeout");
                r.Skip(3);
                var id = r.Oid("o.id", out _);
                var description = System.Text.Encoding.UTF8.GetString(r.OctetString("o.descr"));
                pdu = new OpenPdu(timeout, id, description);
                break;
            }

            case AgentXPduType.Close:
                pdu = new ClosePdu((AgentXCloseReason)r.Byte("c.reason"));
                r.Skip(3);
                break;
            case AgentXPduType.Register or AgentXPduType.Unregister:
            {
                var timeout = r.Byte("r.timeout");
                var priority = r.Byte("r.priority");
                var rangeSubId = r.Byte("r.range_subid");
                r.Skip(1);
                var subtree = r.Oid("r.subtree", out _);
                var upper = rangeSubId != 0 ? r.UInt32("r.upper_bound") : 0;
                pdu = new RegisterPdu(timeout, priority, subtree, rangeSubId, upper, header.Type == AgentXPduType.Unregister);
                break;
            }

            case AgentXPduType.Get or AgentXPduType.GetNext:
                pdu = new GetPdu(header.Type == AgentXPduType.GetNext, r.Ranges());
                break;
            case AgentXPduType.GetBulk:
            {
                var nonRepeaters = r.UInt16("g.non_repeaters");
                var maxRepetitions = r.UInt16("g.max_repetitions");
                pdu = new GetBulkPdu(nonRepeaters, maxRepetitions, r.Ranges());
                break;
            }

            case AgentXPduType.Notify or AgentXPduType.TestSet:
                pdu = new VariablesPdu(header.Type, r.Variables());
                break;
            case AgentXPduType.CommitSet or AgentXPduType.UndoSet or AgentXPduType.CleanupSet or AgentXPduType.Ping:
                pdu = new VariablesPdu(header.Type, []);
                break;
            case AgentXPduType.Response:
            {
                var upTime = r.UInt32("res.sysUpTime");
                var error = (AgentXError)r.UInt16("res.error");
                var index = r.UInt16("res.index");
                pdu = new ResponsePdu(upTime, error, index, r.Variables());
                break;
            }

            default:
                return new UnhandledPdu(header.Type) { SessionId = header.SessionId, TransactionId = header.TransactionId, PacketId = header.PacketId, Context = context };
        }

        if (!r.AtEnd)
        {
            throw new AgentXParseException($"AgentX {header.Type}-PDU: {r.Remaining} bytes after the last field");
        }

        return pdu with
        {
            SessionId = header.SessionId,
            TransactionId = header.TransactionId,
            PacketId = header.PacketId,
            Context = context,
            ExtraFlags = header.Flags & (AgentXFlags.InstanceRegistration | AgentXFlags.NewIndex | AgentXFlags.AnyIndex),
        };
    }

    private ref struct Reader(ReadOnlySpan<byte> payload, bool bigEndian, AgentXPduType type)
    {
        private readonly ReadOnlySpan<byte> _payload = payload;
        private int _offset;

        public readonly bool AtEnd => _offset == _payload.Length;

        public readonly int Remaining => _payload.Length - _offset;

        /// <summary>The next <paramref name="count"/> bytes. The field's name is two parts joined only for an error:
        /// every request passes through here a dozen times.</summary>
        public ReadOnlySpan<byte> Take(int count, string field, string part = "")
        {
            if (count < 0 || _payload.Length - _offset < count)
            {
                throw new AgentXParseException($"AgentX {type}-PDU: {field}{part} at offset {_offset} needs {count} bytes, {_payload.Length - _offset} left");
            }

            var span = _payload.Slice(_offset, count);
            _offset += count;
            return span;
        }

        public void Skip(int count) => Take(count, "reserved");

        public byte Byte(string field, string part = "") => Take(1, field, part)[0];

        public ushort UInt16(string field, string part = "") => Integer<ushort>(field, part);

        public uint UInt32(string field, string part = "") => Integer<uint>(field, part);

        public ulong UInt64(string field, string part = "") => Integer<ulong>(field, part);

        /// <summary>An integer in the PDU's byte order (h.flags NETWORK_BYTE_ORDER).</summary>
        private T Integer<T>(string field, string part) where T : System.Numerics.IBinaryInteger<T>, System.Numerics.IMinMaxValue<T>
        {
            var span = Take(T.MaxValue.GetByteCount(), field, part);
            return bigEndian ? T.ReadBigEndian(span, isUnsigned: true) : T.ReadLittleEndian(span, isUnsigned: true);
        }

        public ReadOnlySpan<byte> OctetString(string field)
        {
            var length = UInt32(field, " length");
            if (length > int.MaxValue - 3)
            {
                throw new AgentXParseException($"AgentX {type}-PDU: {field} length {length} is impossible");
            }

            var octets = Take((int)length, field);
            Skip((4 - ((int)length % 4)) % 4);
            return octets;
        }

        public ObjectIdentifier Oid(string field, out bool include)
        {
            var count = Byte(field, " n_subid");
            var prefix = Byte(field, " prefix");
            include = Byte(field, " include") != 0;
            Skip(1);
            if (count + (prefix != 0 ? 5 : 0) > ObjectIdentifier.MaxLength)
            {
                throw new AgentXParseException($"AgentX {type}-PDU: {field} has {count} sub-identifiers, more than an OID may have");
            }

            var subs = new uint[(prefix != 0 ? 5 : 0) + count];
            var at = 0;
            if (prefix != 0)
            {
                subs[0] = 1;
                subs[1] = 3;
                subs[2] = 6;
                subs[3] = 1;
                subs[4] = prefix;
                at = 5;
            }

            for (var i = 0; i < count; i++)
            {
                subs[at + i] = UInt32(field, " sub-identifier");
            }

            return subs.Length == 0 ? ObjectIdentifier.Null : new ObjectIdentifier(subs);
        }

        public List<SearchRange> Ranges()
        {
            var ranges = new List<SearchRange>();
            while (!AtEnd)
            {
                var start = Oid("SearchRange start", out var include);
                var end = Oid("SearchRange end", out _);
                ranges.Add(new SearchRange(start, include, end));
            }

            return ranges;
        }

        public List<Variable> Variables()
        {
            var variables = new List<Variable>();
            while (!AtEnd)
            {
                var typeCode = UInt16("VarBind v.type");
                Skip(2);
                var name = Oid("VarBind v.name", out _);
                ISnmpData data = (SnmpType)typeCode switch
                {
                    SnmpType.Integer32 => new Integer32(unchecked((int)UInt32("Integer data"))),
                    SnmpType.Counter32 => new Counter32(UInt32("Counter32 data")),
                    SnmpType.Gauge32 => new Gauge32(UInt32("Gauge32 data")),
                    SnmpType.TimeTicks => new TimeTicks(UInt32("TimeTicks data")),
                    SnmpType.Counter64 => new Counter64(UInt64("Counter64 data")),
                    SnmpType.OctetString or SnmpType.IPAddress or SnmpType.Opaque => new OctetString(OctetString("OctetString data")),
                    SnmpType.ObjectIdentifier => Oid("OBJECT IDENTIFIER data", out _),
                    SnmpType.Null => SnmpException.Null,
                    SnmpType.NoSuchObject => SnmpException.NoSuchObject,
                    SnmpType.NoSuchInstance => SnmpException.NoSuchInstance,
                    SnmpType.EndOfMibView => SnmpException.EndOfMibView,
                    _ => throw new AgentXParseException($"AgentX {type}-PDU: VarBind {name} has unknown type {typeCode}"),
                };
                variables.Add(new Variable(name, data));
            }

            return variables;
        }
    }
}
