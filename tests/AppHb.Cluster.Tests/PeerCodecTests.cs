using System.Text;
using AppHb.Cluster.Wire;
using AppHb.Core.Cluster;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Cluster.Tests;

/// <summary>The pair's datagrams (docs/peer-protocol.md): golden bytes, round trips, and every kind of bad datagram
/// refused for the reason it is bad.</summary>
public class PeerCodecTests
{
    private const uint Cluster = 0x0A0B0C0D;
    private static readonly byte[] Key = Encoding.ASCII.GetBytes("0123456789abcdef0123456789abcdef");

    /// <summary>The heartbeat of docs/peer-protocol.md's example, byte for byte.</summary>
    public static PeerHeartbeat Example => new(new PeerHeader(Cluster, 1, 2, 7, 42), ClusterRole.Active, 0, ReachesPingTargets: true,
        GroupRunning: true, [new HeardLink(0, LinkState.Up, 120), new HeardLink(1, LinkState.Late, 1100)],
        [new DataGeneration(3, 1), new DataGeneration(2, 2)], ReplicationPosition: 0, HeardEpoch: 5);

    public const string ExampleHex =
        "41484250" + "03" + "01" + "0000" + "0a0b0c0d" + "0001" + "0002" + "0000000000000007" + "000000000000002a" + "0031"
        + "03" + "00" + "03" + "02" + "00010078" + "0102044c" + "0000000000000005" + "02" + "00000000000000030001" + "00000000000000020002"
        + "0000000000000000";

    [Fact]
    public void The_documented_heartbeat_encodes_to_its_golden_bytes_and_mac()
    {
        var bytes = PeerCodec.Encode(Example, Key);
        Assert.Equal(ExampleHex, Convert.ToHexStringLower(bytes.AsSpan(0, bytes.Length - PeerCodec.MacSize)));
        Assert.Equal(System.Security.Cryptography.HMACSHA256.HashData(Key, bytes.AsSpan(0, bytes.Length - PeerCodec.MacSize)), bytes[^PeerCodec.MacSize..]);
        // The document shows the same bytes, and its MAC (computed independently with Python's hmac when written).
        var document = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "peer-protocol.md"));
        Assert.Contains(Spaced(ExampleHex), document, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(bytes[^PeerCodec.MacSize..]), document, StringComparison.Ordinal);
    }

    [Fact]
    public void The_documented_request_encodes_to_its_golden_bytes_and_mac()
    {
        var request = new PeerRequest(new PeerHeader(Cluster, 1, 2, 7, 43), 9, PeerRequestKind.Released, ReceiverEpoch: 5, "the group is stopped");
        const string Hex = "41484250" + "03" + "02" + "0000" + "0a0b0c0d" + "0001" + "0002" + "0000000000000007" + "000000000000002b" + "0027"
            + "0000000000000009" + "02" + "0000000000000005" + "0014" + "7468652067726f75702069732073746f70706564";

        var bytes = PeerCodec.Encode(request, Key);

        Assert.Equal(Hex, Convert.ToHexStringLower(bytes.AsSpan(0, bytes.Length - PeerCodec.MacSize)));
        var document = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "peer-protocol.md"));
        Assert.Contains(Spaced(Hex), document, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(bytes[^PeerCodec.MacSize..]), document, StringComparison.Ordinal);
        Assert.Equal(request, Decode(bytes, request.Header));
    }

    private static string Spaced(string hex) => string.Join(' ', Enumerable.Range(0, hex.Length / 2).Select(i => hex.Substring(i * 2, 2)));

    [Fact]
    public void Heartbeats_round_trip() => Check(Prop.ForAll(
        Arb.From(from header in Headers
                 from role in Gen.Elements(Enum.GetValues<ClusterRole>())
                 from link in ArbMap.Default.GeneratorFor<byte>()
                 from ping in ArbMap.Default.GeneratorFor<bool>()
                 from running in ArbMap.Default.GeneratorFor<bool>()
                 from heard in Gen.ListOf(from l in ArbMap.Default.GeneratorFor<byte>() from s in Gen.Elements(Enum.GetValues<LinkState>())
                                          from age in ArbMap.Default.GeneratorFor<ushort>() select new HeardLink(l, s, age)).Select(h => h.Take(4).ToArray())
                 from generations in Gen.Choose(1, GenerationHistory.Capacity).SelectMany(n => Gen.ArrayOf(
                     from number in ArbMap.Default.GeneratorFor<ulong>() from node in ArbMap.Default.GeneratorFor<ushort>() select new DataGeneration(number, node), n))
                 from position in ArbMap.Default.GeneratorFor<ulong>()
                 from heardEpoch in ArbMap.Default.GeneratorFor<ulong>()
                 select new PeerHeartbeat(header, role, link, ping, running, heard, generations, position, HeardEpoch: heardEpoch)),
        beat =>
        {
            var decoded = Assert.IsType<PeerHeartbeat>(Decode(PeerCodec.Encode(beat, Key), beat.Header));
            return decoded.Header == beat.Header && decoded.Role == beat.Role && decoded.Link == beat.Link
                && decoded.ReachesPingTargets == beat.ReachesPingTargets && decoded.GroupRunning == beat.GroupRunning
                && decoded.Heard.SequenceEqual(beat.Heard) && decoded.Generations.SequenceEqual(beat.Generations)
                && decoded.ReplicationPosition == beat.ReplicationPosition && decoded.HeardEpoch == beat.HeardEpoch;
        }));

    [Fact]
    public void A_heartbeat_hears_the_receiver_only_in_the_boot_it_echoes_and_only_on_a_dedicated_link()
    {
        static bool Dedicated(byte link) => link == 0;
        var beat = Example with { HeardEpoch = 5 };

        Assert.True(beat.HearsReceiverOn(5, Dedicated));
        // Written before the receiver restarted (into boot 6), delivered after: what it says it hears is boot 5.
        Assert.False(beat.HearsReceiverOn(6, Dedicated));
        // Heard on the LAN only (the dedicated link dead): no.
        Assert.False((beat with { Heard = [new HeardLink(0, LinkState.Dead, 3000), new HeardLink(1, LinkState.Up, 10)] }).HearsReceiverOn(5, Dedicated));
        Assert.False((beat with { HeardEpoch = 0 }).HearsReceiverOn(5, Dedicated));
    }

    [Fact]
    public void Requests_and_replies_round_trip() => Check(Prop.ForAll(
        Arb.From(from header in Headers from id in ArbMap.Default.GeneratorFor<ulong>()
                 from kind in Gen.Elements(Enum.GetValues<PeerRequestKind>()) from done in ArbMap.Default.GeneratorFor<bool>()
                 from text in Gen.Elements("", "failback", "operator asked: apphbctl switchover", "naïve 日本")
                 from receiverEpoch in ArbMap.Default.GeneratorFor<ulong>()
                 select (new PeerRequest(header, id, kind, receiverEpoch, text), new PeerReply(header, id, done, text))),
        pair => Decode(PeerCodec.Encode(pair.Item1, Key), pair.Item1.Header) == pair.Item1
             && Decode(PeerCodec.Encode(pair.Item2, Key), pair.Item2.Header) == pair.Item2));

    [Fact]
    public void Every_single_bit_flip_is_refused_and_never_decodes()
    {
        var bytes = PeerCodec.Encode(Example, Key);
        for (var bit = 0; bit < bytes.Length * 8; bit++)
        {
            var copy = (byte[])bytes.Clone();
            copy[bit / 8] ^= (byte)(1 << (bit % 8));
            var rejection = PeerCodec.TryDecode(copy, Key, Cluster, 1, 2, out var datagram);
            Assert.True(rejection != PeerRejection.None && datagram is null, $"bit {bit}: {rejection}");
        }
    }

    [Fact]
    public void Every_truncation_and_extension_is_refused_as_truncated()
    {
        var bytes = PeerCodec.Encode(Example, Key);
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Equal(PeerRejection.Truncated, PeerCodec.TryDecode(bytes.AsSpan(0, length), Key, Cluster, 1, 2, out _));
        }

        Assert.Equal(PeerRejection.Truncated, PeerCodec.TryDecode([.. bytes, 0], Key, Cluster, 1, 2, out _));
    }

    [Fact]
    public void Another_key_another_cluster_or_another_node_are_refused_for_that_reason()
    {
        var bytes = PeerCodec.Encode(Example, Key);
        Assert.Equal(PeerRejection.None, PeerCodec.TryDecode(bytes, Key, Cluster, 1, 2, out _));
        Assert.Equal(PeerRejection.Forged, PeerCodec.TryDecode(bytes, Encoding.ASCII.GetBytes("another key of thirty-two bytes!"), Cluster, 1, 2, out _));
        Assert.Equal(PeerRejection.ForeignCluster, PeerCodec.TryDecode(bytes, Key, Cluster + 1, 1, 2, out _));
        Assert.Equal(PeerRejection.WrongNode, PeerCodec.TryDecode(bytes, Key, Cluster, 3, 2, out _));
        Assert.Equal(PeerRejection.WrongNode, PeerCodec.TryDecode(bytes, Key, Cluster, 1, 1, out _));
        Assert.Equal(PeerRejection.NotOurs, PeerCodec.TryDecode(Encoding.ASCII.GetBytes(new string('x', 80)), Key, Cluster, 1, 2, out _));
    }

    [Fact]
    public void A_correctly_signed_body_that_does_not_parse_is_malformed()
    {
        // A valid header and MAC around a heartbeat body that claims a role past the last one.
        var bytes = PeerCodec.Encode(Example, Key);
        bytes[PeerCodec.HeaderSize] = 9;
        System.Security.Cryptography.HMACSHA256.HashData(Key, bytes.AsSpan(0, bytes.Length - PeerCodec.MacSize), bytes.AsSpan(bytes.Length - PeerCodec.MacSize));
        Assert.Equal(PeerRejection.Malformed, PeerCodec.TryDecode(bytes, Key, Cluster, 1, 2, out var datagram));
        Assert.Null(datagram);
    }

    private static readonly Gen<PeerHeader> Headers =
        from epoch in ArbMap.Default.GeneratorFor<ulong>() from sequence in ArbMap.Default.GeneratorFor<ulong>()
        select new PeerHeader(Cluster, 1, 2, epoch, sequence);

    private static PeerDatagram Decode(byte[] bytes, PeerHeader header)
    {
        Assert.Equal(PeerRejection.None, PeerCodec.TryDecode(bytes, Key, header.ClusterId, header.Sender, header.Receiver, out var datagram));
        return datagram!;
    }

    private static void Check(Property property) => property.QuickCheckThrowOnFailure();
}

public class ReplayWindowTests
{
    [Fact]
    public void A_duplicate_is_refused_and_reordering_within_the_window_is_accepted_once()
    {
        var window = new ReplayWindow();
        Assert.True(window.Accept(1, 10));
        Assert.False(window.Accept(1, 10));
        Assert.True(window.Accept(1, 8));
        Assert.False(window.Accept(1, 8));
        Assert.True(window.Accept(1, 75));
        Assert.False(window.Accept(1, 11)); // 64 or more behind the highest: too old to tell, refused
        Assert.True(window.Accept(1, 12));
    }

    [Fact]
    public void A_later_boot_starts_a_new_window_and_an_earlier_one_is_refused()
    {
        var window = new ReplayWindow(lastEpochSeen: 5);
        Assert.False(window.Accept(4, 1000));
        Assert.True(window.Accept(6, 1));
        Assert.False(window.Accept(5, 99));
        Assert.Equal(6UL, window.Epoch);
    }

    [Fact]
    public void Whatever_arrives_in_whatever_order_each_sequence_is_accepted_at_most_once() => Prop.ForAll(
        Arb.From(Gen.ListOf(Gen.Choose(1, 300))),
        arrivals =>
        {
            var window = new ReplayWindow();
            var accepted = new HashSet<int>();
            var highest = 0;
            foreach (var sequence in arrivals)
            {
                var fresh = !accepted.Contains(sequence) && sequence > highest - ReplayWindow.Width;
                if (window.Accept(1, (ulong)sequence) != fresh)
                {
                    return false;
                }

                if (fresh)
                {
                    accepted.Add(sequence);
                    highest = Math.Max(highest, sequence);
                }
            }

            return true;
        }).QuickCheckThrowOnFailure();
}
