using System.Security.Cryptography;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Tests;

/// <summary>The replication channel's frames: what one side seals the other opens, in order; a frame altered,
/// replayed, reordered, sealed with the other direction's key or another connection's is refused with the reason.</summary>
public class ChannelCipherTests
{
    private static readonly byte[] ClusterKey = "0123456789abcdef0123456789abcdef"u8.ToArray();

    private static ChannelKeys NewConnection() => ChannelKeys.Derive(ClusterKey, RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void Frames_sealed_by_one_side_open_on_the_other_in_order()
    {
        var keys = NewConnection();
        using var sealer = new FrameSealer(keys.ActiveToStandby);
        using var opener = new FrameOpener(keys.ActiveToStandby);
        foreach (var size in new[] { 0, 1, 4096, 70_000 })
        {
            var payload = RandomNumberGenerator.GetBytes(size);
            var frame = sealer.Seal(payload);
            Assert.False(frame.AsSpan(FrameSealer.HeaderSize).IndexOf(payload) >= 0 && size > 16, "the payload travels in clear");
            Assert.Equal(payload, opener.Open(frame, out var problem));
            Assert.Null(problem);
        }
    }

    [Fact]
    public void A_frame_sealed_into_a_reused_larger_buffer_opens_from_exactly_its_length_and_a_wrong_length_is_refused()
    {
        var keys = NewConnection();
        using var sealer = new FrameSealer(keys.ActiveToStandby);
        using var opener = new FrameOpener(keys.ActiveToStandby);
        // As the channel does: one buffer, larger than any frame, still holding the previous frame's bytes.
        var buffer = new byte[FrameSealer.FrameLength(200_000) + 100];
        foreach (var size in new[] { 200_000, 5, 70_000 })
        {
            var payload = RandomNumberGenerator.GetBytes(size);
            var length = FrameSealer.FrameLength(size);
            sealer.Seal(payload, buffer.AsSpan(0, length));
            Assert.Equal(payload, opener.Open(buffer.AsSpan(0, length), out var problem));
            Assert.Null(problem);
        }

        Assert.Throws<ArgumentException>(() => sealer.Seal(new byte[10], new byte[FrameSealer.FrameLength(10) + 1]));
    }

    [Fact]
    public void A_record_message_is_its_kind_then_the_record_as_the_journal_encodes_it()
    {
        var record = new AppHb.Replication.Journal.WriteRecord(7, new AppHb.Core.Cluster.DataGeneration(3, 1), "db/pages", 1 << 20, 4096,
            [new(0, RandomNumberGenerator.GetBytes(4096)), new(9, RandomNumberGenerator.GetBytes(100))], Modified: 123_456_789);
        var message = ReplicationMessage.Record(record);
        Assert.Equal((byte)ReplicationMessageKind.Record, message[0]);
        Assert.Equal(AppHb.Replication.Journal.JournalCodec.Encode(record), message[1..]);
    }

    [Fact]
    public void An_altered_replayed_reordered_or_foreign_frame_is_refused_with_the_reason()
    {
        var keys = NewConnection();
        using var sealer = new FrameSealer(keys.ActiveToStandby);
        var first = sealer.Seal("first"u8);
        var second = sealer.Seal("second"u8);

        using (var opener = new FrameOpener(keys.ActiveToStandby))
        {
            Assert.Null(opener.Open(second, out var problem));
            Assert.Contains("frame 2 where frame 1 was due", problem, StringComparison.Ordinal);
            var altered = (byte[])first.Clone();
            altered[^1] ^= 1;
            Assert.Null(opener.Open(altered, out problem));
            Assert.Contains("fails authentication", problem, StringComparison.Ordinal);
            Assert.NotNull(opener.Open(first, out _));
            Assert.Null(opener.Open(first, out problem));
            Assert.Contains("frame 1 where frame 2 was due", problem, StringComparison.Ordinal);
        }

        // The other direction's key, and another connection's keys (the same cluster key, other salts).
        using var reverse = new FrameOpener(keys.StandbyToActive);
        Assert.Null(reverse.Open(first, out var reverseProblem));
        Assert.Contains("fails authentication", reverseProblem, StringComparison.Ordinal);
        using var other = new FrameOpener(NewConnection().ActiveToStandby);
        Assert.Null(other.Open(first, out _));
    }

    [Fact]
    public void Keys_differ_by_direction_and_by_connection_and_need_the_cluster_key()
    {
        var activeSalt = RandomNumberGenerator.GetBytes(32);
        var standbySalt = RandomNumberGenerator.GetBytes(32);
        var keys = ChannelKeys.Derive(ClusterKey, activeSalt, standbySalt);
        Assert.Equal(keys.ActiveToStandby, ChannelKeys.Derive(ClusterKey, activeSalt, standbySalt).ActiveToStandby);
        Assert.NotEqual(keys.ActiveToStandby, keys.StandbyToActive);
        Assert.NotEqual(keys.ActiveToStandby, ChannelKeys.Derive(ClusterKey, standbySalt, activeSalt).ActiveToStandby);
        Assert.NotEqual(keys.ActiveToStandby, ChannelKeys.Derive("another cluster's key of 32 bytes"u8, activeSalt, standbySalt).ActiveToStandby);
        Assert.Throws<ArgumentException>(() => ChannelKeys.Derive("short"u8, activeSalt, standbySalt));
    }
}
