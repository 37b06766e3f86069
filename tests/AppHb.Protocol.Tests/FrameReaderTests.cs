using AppHb.Protocol;

namespace AppHb.Protocol.Tests;

public class FrameReaderTests
{
    [Fact]
    public void Incomplete_frames_ask_for_more_bytes()
    {
        var frame = FrameWriter.ToArray(new SetIntervalRequest(1000), 1);
        for (var length = 0; length < frame.Length; length++)
        {
            Assert.False(FrameReader.TryReadFrame(frame.AsSpan(0, length), out _));
        }

        Assert.True(FrameReader.TryReadFrame(frame, out var header));
        Assert.Equal(FrameType.SetInterval, header.Type);
    }

    [Fact]
    public void Oversized_length_is_rejected_from_the_prefix_alone()
    {
        var e = Assert.Throws<ProtocolException>(() => FrameReader.TryReadFrame(Convert.FromHexString("7FFFFFFF"), out _));
        Assert.Equal(ErrorCode.Oversized, e.Code);
        Assert.Contains("2147483647", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00000007", ErrorCode.Malformed, "shorter than the 8 header bytes")]
    [InlineData("00000008" + "02" + "02" + "0000" + "00000000", ErrorCode.UnsupportedVersion, "version 2")]
    [InlineData("00000008" + "01" + "7F" + "0000" + "00000000", ErrorCode.UnknownType, "0x7f")]
    [InlineData("00000008" + "01" + "02" + "8000" + "00000000", ErrorCode.Malformed, "unknown flag bits 0x8000")]
    public void Bad_headers_name_the_problem(string hex, ErrorCode code, string fragment)
    {
        var e = Assert.Throws<ProtocolException>(() => FrameReader.TryReadFrame(Convert.FromHexString(hex), out _));
        Assert.Equal(code, e.Code);
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sequence_can_be_peeked_from_a_header_that_fails_validation()
    {
        var bytes = Convert.FromHexString("00000008" + "09" + "55" + "FFFF" + "0000002A");
        Assert.Throws<ProtocolException>(() => FrameReader.TryReadFrame(bytes, out _));
        Assert.Equal(42u, FrameReader.PeekSequence(bytes));
        Assert.Null(FrameReader.PeekSequence(bytes.AsSpan(0, 11)));
    }

    [Fact]
    public void Truncated_payload_names_the_field()
    {
        var e = Assert.Throws<ProtocolException>(() => RegisterRequest.Read(Convert.FromHexString("0002" + "6462" + "0000" + "000027")));
        Assert.Contains("'interval_ms'", e.Message, StringComparison.Ordinal);
        Assert.Contains("Register", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Trailing_bytes_are_malformed()
    {
        var e = Assert.Throws<ProtocolException>(() => SetWarnRequest.Read(Convert.FromHexString("00000001" + "FF")));
        Assert.Contains("1 unexpected trailing byte", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_utf8_and_control_characters_are_rejected()
    {
        var badUtf8 = Assert.Throws<ProtocolException>(() => RegisterRequest.Read(Convert.FromHexString("0002" + "C328" + "0000" + "00002710" + "00000000")));
        Assert.Contains("not valid UTF-8", badUtf8.Message, StringComparison.Ordinal);
        var control = Assert.Throws<ProtocolException>(() => RegisterRequest.Read(Convert.FromHexString("0002" + "610A" + "0000" + "00002710" + "00000000")));
        Assert.Contains("U+000A", control.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_name_is_an_invalid_argument()
    {
        var e = Assert.Throws<ProtocolException>(() => RegisterRequest.Read(Convert.FromHexString("0000" + "0000" + "00002710" + "00000000")));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
    }

    [Fact]
    public void Name_longer_than_the_limit_is_rejected_before_reading_it()
    {
        var e = Assert.Throws<ProtocolException>(() => RegisterRequest.Read(Convert.FromHexString("0081")));
        Assert.Contains("129 bytes; at most 128", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Error_reply_messages_are_cut_to_the_wire_limit_at_a_character_boundary()
    {
        var reply = ErrorReply.Create(ErrorCode.Malformed, new string('é', 2000) + "\n");
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(reply.Message) <= ErrorReply.MaxMessageBytes);
        var decoded = ErrorReply.Read(FrameWriter.ToArray(reply, 1).AsSpan(FrameFormat.HeaderSize));
        Assert.Equal(reply, decoded);
    }
}
