using AppHb.Protocol;

namespace AppHb.Protocol.Tests;

/// <summary>The bytes of docs/protocol.md's examples. A change here is a wire break for every client.</summary>
public class GoldenFrameTests
{
    [Fact]
    public void Beat_with_ack_is_twelve_bytes()
    {
        var frame = FrameWriter.EmptyToArray(FrameType.Beat, 7, FrameFlags.AckRequested);
        Assert.Equal(Convert.FromHexString("00000008" + "01" + "02" + "0001" + "00000007"), frame);
    }

    [Fact]
    public void Register_encodes_strings_with_u16_lengths_and_big_endian_times()
    {
        var frame = FrameWriter.ToArray(new RegisterRequest("db", "a", 10_000, 5_000), 1);
        Assert.Equal(Convert.FromHexString(
            "00000017" + "01" + "01" + "0000" + "00000001" // length 23 = 8 header + 15 payload; version 1; Register; seq 1
            + "0002" + "6462"                              // name "db"
            + "0001" + "61"                                // instance "a"
            + "00002710"                                   // interval 10000 ms
            + "00001388"),                                 // warn 5000 ms
            frame);
    }

    [Fact]
    public void Registered_reply_carries_id_and_kernel_credentials()
    {
        var frame = FrameWriter.ToArray(new RegisteredReply(0x0102030405060708, 4242, 1000, 100), 9);
        Assert.Equal(Convert.FromHexString(
            "0000001C" + "01" + "81" + "0000" + "00000009"
            + "0102030405060708" + "00001092" + "000003E8" + "00000064"), frame);
    }

    [Fact]
    public void Error_reply_has_code_then_message()
    {
        var frame = FrameWriter.ToArray(new ErrorReply(ErrorCode.OutOfOrder, "no"), 3);
        Assert.Equal(Convert.FromHexString("0000000E" + "01" + "82" + "0000" + "00000003" + "0005" + "0002" + "6E6F"), frame);
    }

    [Fact]
    public void Set_interval_and_set_warn_carry_one_u32()
    {
        Assert.Equal(Convert.FromHexString("0000000C" + "01" + "03" + "0000" + "00000002" + "000003E8"),
            FrameWriter.ToArray(new SetIntervalRequest(1000), 2));
        Assert.Equal(Convert.FromHexString("0000000C" + "01" + "04" + "0000" + "00000002" + "00000000"),
            FrameWriter.ToArray(new SetWarnRequest(0), 2));
    }

    [Fact]
    public void A_large_document_is_split_into_frames_flagged_more()
    {
        var document = new byte[FrameFormat.MaxPayloadSize + 10];
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        FrameWriter.WriteDocument(output, FrameType.Status, 4, document);
        var bytes = output.WrittenSpan;
        Assert.True(FrameReader.TryReadFrame(bytes, out var first));
        Assert.Equal(FrameFlags.More, first.Flags);
        Assert.Equal(FrameFormat.MaxPayloadSize, first.PayloadLength);
        Assert.True(FrameReader.TryReadFrame(bytes[first.FrameLength..], out var second));
        Assert.Equal(FrameFlags.None, second.Flags);
        Assert.Equal(10, second.PayloadLength);
        Assert.Equal(first.FrameLength + second.FrameLength, bytes.Length);
    }
}
