using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using AppHb.Core.Cluster;
using AppHb.Core.Wire;

namespace AppHb.Cluster.Wire;

/// <summary>Why a datagram was refused. Each is counted in /metrics by its name; none changes anything.</summary>
public enum PeerRejection
{
    None,
    /// <summary>Shorter than a header and a MAC, or longer than <see cref="PeerCodec.MaxDatagramSize"/>.</summary>
    Truncated,
    /// <summary>Not "AHBP", or a version this node does not speak.</summary>
    NotOurs,
    /// <summary>Another pair's cluster id.</summary>
    ForeignCluster,
    /// <summary>From a node that is not the peer, or meant for a node that is not this one.</summary>
    WrongNode,
    /// <summary>The HMAC does not match: forged, corrupted, or another key.</summary>
    Forged,
    /// <summary>Authenticated, but a boot epoch and sequence already seen or too old.</summary>
    Replayed,
    /// <summary>Authenticated, but its body does not parse.</summary>
    Malformed,
}

/// <summary>Encodes and decodes the pair's datagrams (docs/peer-protocol.md): big-endian, a 34-byte header, a body,
/// and an HMAC-SHA256 over everything before it with the pair's shared key.</summary>
public static class PeerCodec
{
    public const byte Version = 3;
    public const int HeaderSize = 34;
    public const int MacSize = 32;
    /// <summary>Fits an IPv6 minimum MTU's payload: a datagram is never fragmented.</summary>
    public const int MaxDatagramSize = 1232;
    public const int MaxReasonBytes = 512;
    private static ReadOnlySpan<byte> Magic => "AHBP"u8;

    public static byte[] Encode(PeerDatagram datagram, ReadOnlySpan<byte> key)
    {
        ArgumentNullException.ThrowIfNull(datagram);
        var body = new List<byte>(64);
        switch (datagram)
        {
            case PeerHeartbeat beat:
                body.Add((byte)beat.Role);
                body.Add(beat.Link);
                body.Add((byte)((beat.ReachesPingTargets ? 1 : 0) | (beat.GroupRunning ? 2 : 0) | (beat.HeldStandby ? 4 : 0)));
                body.Add(checked((byte)beat.Heard.Count));
                foreach (var heard in beat.Heard)
                {
                    body.Add(heard.Link);
                    body.Add((byte)heard.State);
                    BigEndianWriter.AddUInt16(body, heard.AgeMs);
                }

                BigEndianWriter.AddUInt64(body, beat.HeardEpoch);

                if (beat.Generations.Count is 0 or > GenerationHistory.Capacity)
                {
                    throw new ArgumentException($"a heartbeat carries 1 to {GenerationHistory.Capacity} generations", nameof(datagram));
                }

                body.Add((byte)beat.Generations.Count);
                foreach (var generation in beat.Generations)
                {
                    BigEndianWriter.AddUInt64(body, generation.Number);
                    BigEndianWriter.AddUInt16(body, generation.Node);
                }

                BigEndianWriter.AddUInt64(body, beat.ReplicationPosition);
                break;
            case PeerRequest request:
                BigEndianWriter.AddUInt64(body, request.Id);
                body.Add((byte)request.Kind);
                BigEndianWriter.AddUInt64(body, request.ReceiverEpoch);
                BigEndianWriter.AddString(body, request.Reason, MaxReasonBytes, "a reason or message");
                break;
            case PeerReply reply:
                BigEndianWriter.AddUInt64(body, reply.Id);
                body.Add(reply.Done ? (byte)0 : (byte)1);
                BigEndianWriter.AddString(body, reply.Message, MaxReasonBytes, "a reason or message");
                break;
            default:
                throw new ArgumentException($"unknown datagram {datagram.GetType().Name}", nameof(datagram));
        }

        var bytes = new byte[HeaderSize + body.Count + MacSize];
        if (bytes.Length > MaxDatagramSize)
        {
            throw new ArgumentException($"the datagram would be {bytes.Length} bytes, over {MaxDatagramSize}", nameof(datagram));
        }

        var h = datagram.Header;
        Magic.CopyTo(bytes);
        bytes[4] = Version;
        bytes[5] = (byte)datagram.Type;
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), 0);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), h.ClusterId);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(12), h.Sender);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(14), h.Receiver);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), h.BootEpoch);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(24), h.Sequence);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(32), (ushort)body.Count);
        body.CopyTo(bytes, HeaderSize);
        HMACSHA256.HashData(key, bytes.AsSpan(0, HeaderSize + body.Count), bytes.AsSpan(HeaderSize + body.Count));
        return bytes;
    }

    /// <summary>Checks a received datagram, in this order: size, magic and version, cluster, nodes, MAC, body. The
    /// replay window is the caller's (it holds state): apply it to <see cref="PeerDatagram.Header"/> after this.</summary>
    public static PeerRejection TryDecode(ReadOnlySpan<byte> bytes, ReadOnlySpan<byte> key, uint clusterId, ushort expectedSender,
        ushort me, out PeerDatagram? datagram)
    {
        datagram = null;
        if (bytes.Length < HeaderSize + MacSize || bytes.Length > MaxDatagramSize)
        {
            return PeerRejection.Truncated;
        }

        if (!bytes[..4].SequenceEqual(Magic) || bytes[4] != Version)
        {
            return PeerRejection.NotOurs;
        }

        var bodyLength = BinaryPrimitives.ReadUInt16BigEndian(bytes[32..]);
        if (HeaderSize + bodyLength + MacSize != bytes.Length)
        {
            return PeerRejection.Truncated;
        }

        var header = new PeerHeader(BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]), BinaryPrimitives.ReadUInt16BigEndian(bytes[12..]),
            BinaryPrimitives.ReadUInt16BigEndian(bytes[14..]), BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]), BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]));
        if (header.ClusterId != clusterId)
        {
            return PeerRejection.ForeignCluster;
        }

        if (header.Sender != expectedSender || header.Receiver != me)
        {
            return PeerRejection.WrongNode;
        }

        Span<byte> mac = stackalloc byte[MacSize];
        HMACSHA256.HashData(key, bytes[..(HeaderSize + bodyLength)], mac);
        if (!CryptographicOperations.FixedTimeEquals(mac, bytes[(HeaderSize + bodyLength)..]))
        {
            return PeerRejection.Forged;
        }

        var flags = BinaryPrimitives.ReadUInt16BigEndian(bytes[6..]);
        var body = bytes.Slice(HeaderSize, bodyLength);
        datagram = flags != 0 ? null : (PeerDatagramType)bytes[5] switch
        {
            PeerDatagramType.Heartbeat => ReadHeartbeat(header, body),
            PeerDatagramType.Request => ReadRequest(header, body),
            PeerDatagramType.Reply => ReadReply(header, body),
            _ => null,
        };
        return datagram is null ? PeerRejection.Malformed : PeerRejection.None;
    }

    private static PeerHeartbeat? ReadHeartbeat(PeerHeader header, ReadOnlySpan<byte> body)
    {
        var reader = new BigEndianReader(body);
        if (!reader.Read8(out var role) || role > (byte)ClusterRole.Releasing || !reader.Read8(out var link) || !reader.Read8(out var flags) || flags > 7
            || !reader.Read8(out var heardCount))
        {
            return null;
        }

        var heard = new HeardLink[heardCount];
        for (var i = 0; i < heardCount; i++)
        {
            if (!reader.Read8(out var l) || !reader.Read8(out var state) || state > (byte)LinkState.Returning || !reader.Read16(out var age))
            {
                return null;
            }

            heard[i] = new HeardLink(l, (LinkState)state, age);
        }

        if (!reader.Read64(out var heardEpoch) || !reader.Read8(out var count) || count is 0 or > GenerationHistory.Capacity)
        {
            return null;
        }

        var generations = new DataGeneration[count];
        for (var i = 0; i < count; i++)
        {
            if (!reader.Read64(out var number) || !reader.Read16(out var node))
            {
                return null;
            }

            generations[i] = new DataGeneration(number, node);
        }

        return reader.Read64(out var position) && reader.AtEnd
            ? new PeerHeartbeat(header, (ClusterRole)role, link, (flags & 1) != 0, (flags & 2) != 0, heard, generations, position, (flags & 4) != 0, heardEpoch)
            : null;
    }

    private static PeerRequest? ReadRequest(PeerHeader header, ReadOnlySpan<byte> body)
    {
        var reader = new BigEndianReader(body);
        return reader.Read64(out var id) && reader.Read8(out var kind) && kind is >= 1 and <= 5 && reader.Read64(out var receiverEpoch)
               && reader.ReadText(MaxReasonBytes, out var reason) && reader.AtEnd
            ? new PeerRequest(header, id, (PeerRequestKind)kind, receiverEpoch, reason)
            : null;
    }

    private static PeerReply? ReadReply(PeerHeader header, ReadOnlySpan<byte> body)
    {
        var reader = new BigEndianReader(body);
        return reader.Read64(out var id) && reader.Read8(out var result) && result <= 1 && reader.ReadText(MaxReasonBytes, out var message) && reader.AtEnd
            ? new PeerReply(header, id, result == 0, message)
            : null;
    }
}
