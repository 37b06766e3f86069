using System.Buffers;
using System.Buffers.Binary;

namespace AppHb.Export.Snmp.AgentX;

/// <summary>Encodes PDUs (RFC 2741 section 5 for the data types, 6 for the PDUs). Always in network byte order when
/// this side chooses; a response uses the byte order of the request it answers.</summary>
public static class AgentXWriter
{
    /// <summary>1.3.6.1: the internet prefix an OID encoding may abbreviate (RFC 2741 section 5.1).</summary>
    private static readonly uint[] Internet = [1, 3, 6, 1];

    public static byte[] Encode(AgentXPdu pdu, bool networkByteOrder = true)
    {
        ArgumentNullException.ThrowIfNull(pdu);
        var buffer = new ArrayBufferWriter<byte>(256);
        Encode(pdu, buffer, networkByteOrder);
        return buffer.WrittenSpan.ToArray();
    }

    public static void Encode(AgentXPdu pdu, ArrayBufferWriter<byte> buffer, bool networkByteOrder = true)
    {
        ArgumentNullException.ThrowIfNull(pdu);
        ArgumentNullException.ThrowIfNull(buffer);
        var start = buffer.WrittenCount;
        var w = new Writer(buffer, networkByteOrder);
        var flags = pdu.ExtraFlags | (networkByteOrder ? AgentXFlags.NetworkByteOrder : AgentXFlags.None);
        var hasContext = pdu.Context is not null && CarriesContext(pdu.Type);
        if (hasContext)
        {
            flags |= AgentXFlags.NonDefaultContext;
        }

        w.Byte(AgentXHeader.Version);
        w.Byte((byte)pdu.Type);
        w.Byte((byte)flags);
        w.Byte(0);
        w.UInt32(pdu.SessionId);
        w.UInt32(pdu.TransactionId);
        w.UInt32(pdu.PacketId);
        w.UInt32(0); // payload length, patched below
        if (hasContext)
        {
            w.OctetString(pdu.Context);
        }

        switch (pdu)
        {
            case OpenPdu open:
                w.Byte(open.Timeout);
                w.Zeros(3);
                w.Oid(open.Id, include: false);
                w.OctetString(System.Text.Encoding.UTF8.GetBytes(open.Description));
                break;
            case ClosePdu close:
                w.Byte((byte)close.Reason);
                w.Zeros(3);
                break;
            case RegisterPdu register:
                w.Byte(register.Unregister ? (byte)0 : register.Timeout);
                w.Byte(register.Priority);
                w.Byte(register.RangeSubId);
                w.Byte(0);
                w.Oid(register.Subtree, include: false);
                if (register.RangeSubId != 0)
                {
                    w.UInt32(register.UpperBound);
                }

                break;
            case GetPdu get:
                w.Ranges(get.Ranges);
                break;
            case GetBulkPdu bulk:
                w.UInt16(bulk.NonRepeaters);
                w.UInt16(bulk.MaxRepetitions);
                w.Ranges(bulk.Ranges);
                break;
            case VariablesPdu variables:
                if (VariablesPdu.Carries(variables.Kind))
                {
                    w.Variables(variables.Variables);
                }

                break;
            case ResponsePdu response:
                w.UInt32(response.SysUpTime);
                w.UInt16((ushort)response.Error);
                w.UInt16(response.Index);
                w.Variables(response.Variables);
                break;
            case UnhandledPdu:
                break;
            default:
                throw new ArgumentException($"cannot encode {pdu.GetType().Name}", nameof(pdu));
        }

        var length = (uint)(buffer.WrittenCount - start - AgentXHeader.Size);
        var lengthField = System.Runtime.InteropServices.MemoryMarshal.AsMemory(buffer.WrittenMemory).Span.Slice(start + 16, 4);
        if (networkByteOrder)
        {
            BinaryPrimitives.WriteUInt32BigEndian(lengthField, length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(lengthField, length);
        }
    }

    internal static bool CarriesContext(AgentXPduType type) => type is not (AgentXPduType.Open or AgentXPduType.Close or AgentXPduType.Response
        or AgentXPduType.CommitSet or AgentXPduType.UndoSet or AgentXPduType.CleanupSet);

    private readonly ref struct Writer(ArrayBufferWriter<byte> buffer, bool bigEndian)
    {
        public void Byte(byte value)
        {
            buffer.GetSpan(1)[0] = value;
            buffer.Advance(1);
        }

        public void Zeros(int count)
        {
            buffer.GetSpan(count)[..count].Clear();
            buffer.Advance(count);
        }

        public void UInt16(ushort value) => Integer(value);

        public void UInt32(uint value) => Integer(value);

        public void UInt64(ulong value) => Integer(value);

        /// <summary>An integer in the PDU's byte order (h.flags NETWORK_BYTE_ORDER).</summary>
        private void Integer<T>(T value) where T : System.Numerics.IBinaryInteger<T>
        {
            // TryWrite*, not Write*: those are default interface methods, and calling one on an integer boxes it.
            var size = value.GetByteCount();
            var span = buffer.GetSpan(size);
            _ = bigEndian ? value.TryWriteBigEndian(span, out _) : value.TryWriteLittleEndian(span, out _);
            buffer.Advance(size);
        }

        public void OctetString(ReadOnlySpan<byte> octets)
        {
            UInt32((uint)octets.Length);
            octets.CopyTo(buffer.GetSpan(octets.Length));
            buffer.Advance(octets.Length);
            Zeros((4 - (octets.Length % 4)) % 4);
        }

        public void Oid(ObjectIdentifier oid, bool include)
        {
            var subs = oid.SubIdentifiers;
            byte prefix = 0;
            if (subs.Length >= 5 && subs.StartsWith(Internet) && subs[4] is > 0 and <= byte.MaxValue)
            {
                prefix = (byte)subs[4];
                subs = subs[5..];
            }

            Byte((byte)subs.Length);
            Byte(prefix);
            Byte(include ? (byte)1 : (byte)0);
            Byte(0);
            foreach (var sub in subs)
            {
                UInt32(sub);
            }
        }

        // Indexed loops: foreach over an IReadOnlyList boxes its enumerator, once per PDU on the request path.
        public void Ranges(IReadOnlyList<SearchRange> ranges)
        {
            for (var i = 0; i < ranges.Count; i++)
            {
                var range = ranges[i];
                Oid(range.Start, range.Include);
                Oid(range.End, include: false);
            }
        }

        public void Variables(IReadOnlyList<Variable> variables)
        {
            for (var i = 0; i < variables.Count; i++)
            {
                var variable = variables[i];
                UInt16((ushort)variable.Data.TypeCode);
                Zeros(2);
                Oid(variable.Id, include: false);
                switch (variable.Data)
                {
                    case Integer32 integer:
                        UInt32(unchecked((uint)integer.Value));
                        break;
                    case Counter32 c:
                        UInt32(c.Value);
                        break;
                    case Gauge32 g:
                        UInt32(g.Value);
                        break;
                    case TimeTicks t:
                        UInt32(t.Value);
                        break;
                    case Counter64 c:
                        UInt64(c.Value);
                        break;
                    case OctetString s:
                        OctetString(s.Octets);
                        break;
                    case ObjectIdentifier o:
                        Oid(o, include: false);
                        break;
                    case SnmpException:
                        break;
                    default:
                        throw new ArgumentException($"{variable.Id}: cannot encode a {variable.Data.GetType().Name}");
                }
            }
        }
    }
}
