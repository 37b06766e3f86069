using AppHb.Protocol;

namespace AppHb.Protocol.Tests;

public class ControlFrameTests
{
    [Fact]
    public void Control_restart_web_is_action_byte_name_and_line_count()
    {
        var frame = FrameWriter.ToArray(new ControlRequest(ControlAction.Restart, "web", 0), 2);
        Assert.Equal(Convert.FromHexString(
            "00000012" + "01" + "20" + "0000" + "00000002" // length 18 = 8 header + 10 payload; Control; seq 2
            + "03"                                         // restart
            + "0003" + "776562"                            // "web"
            + "00000000"),                                 // lines
            frame);
        Assert.True(FrameReader.TryReadFrame(frame, out var header));
        Assert.Equal(new ControlRequest(ControlAction.Restart, "web", 0), ControlRequest.Read(frame.AsSpan(FrameFormat.HeaderSize, header.PayloadLength)));
    }

    [Theory]
    [InlineData("00" + "0003776562" + "00000000", "field 'action' 0 is not 1 (start) to 13 (replication repair)")]
    [InlineData("0E" + "0003776562" + "00000000", "field 'action' 14")]
    [InlineData("0A" + "0000" + "00000000", "field 'name' must name the surviving node for Resolve")]
    [InlineData("02" + "0000" + "00000000", "field 'name' must name a service for Stop")]
    [InlineData("02" + "0003776562", "lines")]
    public void Bad_control_payloads_are_refused_naming_the_field(string payloadHex, string expected)
    {
        var e = Assert.Throws<ProtocolException>(() => ControlRequest.Read(Convert.FromHexString(payloadHex)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reload_needs_no_name()
    {
        var request = ControlRequest.Read(Convert.FromHexString("05" + "0000" + "00000000"));
        Assert.Equal(ControlAction.Reload, request.Action);
        Assert.Empty(request.Name);
    }

    [Fact]
    public void The_pair_actions_need_no_name_and_resolve_names_the_survivor()
    {
        Assert.Equal(new ControlRequest(ControlAction.Switchover, string.Empty, 0), ControlRequest.Read(Convert.FromHexString("06" + "0000" + "00000000")));
        Assert.Equal(ControlAction.Unstandby, ControlRequest.Read(Convert.FromHexString("09" + "0000" + "00000000")).Action);
        Assert.Equal(new ControlRequest(ControlAction.Resolve, "nodeA", 0), ControlRequest.Read(Convert.FromHexString("0A" + "0005" + "6E6F646541" + "00000000")));
    }
}
