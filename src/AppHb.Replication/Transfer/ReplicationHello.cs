using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AppHb.Replication.Transfer;

/// <summary>Which end of a replication connection a node is: the active node sends its journal, the standby applies
/// it and acknowledges.</summary>
public enum ReplicationSide : byte
{
    Sender = 1,
    Receiver = 2,
}

/// <summary>What each side sends, in the clear, the moment a replication connection opens (docs/replication-design.md,
/// "Transfer"): a magic, the protocol version, which side it is, its node id and its half of the key salt. Everything
/// after it is sealed with keys derived from the cluster key and both salts, so a peer without the key fails at its
/// first frame.</summary>
public sealed record ReplicationHello(ushort Version, ReplicationSide Side, ushort NodeId, byte[] Salt)
{
    public const int Size = 4 + 2 + 1 + 2 + ChannelKeys.SaltSize;

    /// <summary>The version this build speaks; a peer speaking another is refused, naming both. (2: a manifest entry
    /// carries its mode, owner and group; 3: a resync request may name the paths it compares; 4: a manifest entry carries
    /// a file's modification time, and write and create records may; 5: the standby acknowledges cuts once durable in
    /// its receive log and says when they are applied.)</summary>
    public const ushort CurrentVersion = 5;

    private static ReadOnlySpan<byte> Magic => "AHRP"u8;

    public static ReplicationHello Create(ReplicationSide side, ushort nodeId) =>
        new(CurrentVersion, side, nodeId, RandomNumberGenerator.GetBytes(ChannelKeys.SaltSize));

    public byte[] Encode()
    {
        var bytes = new byte[Size];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), Version);
        bytes[6] = (byte)Side;
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(7), NodeId);
        Salt.CopyTo(bytes, 9);
        return bytes;
    }

    /// <summary>The peer's hello, checked against this side's expectations.</summary>
    /// <exception cref="ReplicationRefusedException">Not a replication peer, another version, or the same side.</exception>
    public static ReplicationHello Decode(ReadOnlySpan<byte> bytes, ReplicationSide mySide, ushort expectedPeer)
    {
        if (bytes.Length != Size || !bytes[..4].SequenceEqual(Magic))
        {
            throw new ReplicationRefusedException($"the peer is not an AppHb replication peer (it opened with {Convert.ToHexString(bytes[..Math.Min(bytes.Length, 8)])})");
        }

        var version = BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]);
        if (version != CurrentVersion)
        {
            throw new ReplicationRefusedException($"the peer speaks replication protocol version {version}, this node version {CurrentVersion}: run the same AppHb release on both nodes");
        }

        var side = (ReplicationSide)bytes[6];
        if (side is not (ReplicationSide.Sender or ReplicationSide.Receiver) || side == mySide)
        {
            throw new ReplicationRefusedException($"the peer is the {Name(side)} and so is this node: only the active node sends (do both believe they are {(mySide == ReplicationSide.Sender ? "active" : "standby")}?)");
        }

        var node = BinaryPrimitives.ReadUInt16BigEndian(bytes[7..]);
        if (node != expectedPeer)
        {
            throw new ReplicationRefusedException($"the peer says it is node {node}, this pair's peer is node {expectedPeer}");
        }

        return new ReplicationHello(version, side, node, bytes[9..].ToArray());
    }

    private static string Name(ReplicationSide side) => side switch
    {
        ReplicationSide.Sender => "sender",
        ReplicationSide.Receiver => "receiver",
        _ => $"unknown side {(byte)side}",
    };
}

/// <summary>A replication connection refused or ended for a reason the operator must read: the message says what was
/// wrong (a version, a key, a frame, a record). The connection is closed; nothing of the refused frame is applied.</summary>
public sealed class ReplicationRefusedException(string message) : IOException(message);
