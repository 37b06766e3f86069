using System.Globalization;
using System.Text.RegularExpressions;
using AppHb.Testing;

namespace AppHb.Protocol.Tests;

/// <summary>The example sessions of docs/protocol.md, read from the page itself: every byte they show must be what
/// this library writes for the frame the line describes. A client written from the page alone (as an independent one
/// was) then speaks what the daemon reads.</summary>
public partial class ProtocolDocumentTests
{
    /// <summary>What each example line describes, as this library writes it.</summary>
    private static readonly Dictionary<string, byte[]> Described = new(StringComparer.Ordinal)
    {
        ["Register \"db\", \"\", 10 s, warn 5 s"] = FrameWriter.ToArray(new RegisterRequest("db", string.Empty, 10_000, 5_000), 1),
        ["Registered"] = FrameWriter.ToArray(new RegisteredReply(1, 2, 3, 4), 1),
        ["Beat (no reply)"] = FrameWriter.EmptyToArray(FrameType.Beat, 0),
        ["Beat with ACK"] = FrameWriter.EmptyToArray(FrameType.Beat, 5, FrameFlags.AckRequested),
        ["Unregister"] = FrameWriter.EmptyToArray(FrameType.Unregister, 2),
        ["Register \"\", \"\", 1 s: an empty name"] = FrameWriter.ToArray(new RegisterRequest(string.Empty, string.Empty, 1_000, 0), 3),
        ["Error InvalidArgument"] = FrameWriter.ToArray(ErrorReply.Create(ErrorCode.InvalidArgument, "Register frame: field 'name' must not be empty"), 3),
        ["Subscribe with HISTORY"] = FrameWriter.EmptyToArray(FrameType.Subscribe, 7, FrameFlags.ReplayHistory),
        ["Event"] = FrameWriter.ToArrayRaw(FrameType.Event, 0, "{}"u8),
        ["EventsLost: 200 events from sequence 1025"] = FrameWriter.ToArray(new EventsLostReply(1025, 200), 0),
    };

    /// <summary>Oks answer the request just above them: their sequence is the only difference.</summary>
    private static byte[] Ok(uint sequence) => FrameWriter.EmptyToArray(FrameType.Ok, sequence);

    [GeneratedRegex(@"^\s*(?<direction>[→←])\s+(?<bytes>(?:(?:[0-9A-Fa-f]{2})+|<[^>]*>)(?:\s+(?:(?:[0-9A-Fa-f]{2})+|<[^>]*>))*)\s{3,}(?<what>\S.*)$")]
    private static partial Regex ExampleLine();

    private static List<(int Line, string Direction, string Bytes, string What)> Examples(string[] text)
    {
        var start = Array.FindIndex(text, l => l == "## Example sessions");
        Assert.True(start >= 0, "docs/protocol.md has no \"## Example sessions\" section");
        var found = new List<(int, string, string, string)>();
        for (var i = start; i < text.Length; i++)
        {
            if (ExampleLine().Match(text[i]) is { Success: true } m)
            {
                found.Add((i + 1, m.Groups["direction"].Value, m.Groups["bytes"].Value, m.Groups["what"].Value.Trim()));
            }
        }

        return found;
    }

    [Fact]
    public void Every_byte_of_the_example_sessions_is_what_the_library_writes()
    {
        var examples = Examples(File.ReadAllLines(Path.Combine(RepositoryPaths.Root, "docs", "protocol.md")));
        Assert.True(examples.Count >= 10, $"only {examples.Count} example lines found");
        Check(examples);
    }

    [Fact]
    public void A_wrong_byte_on_the_page_is_caught_with_its_line()
    {
        // The page's old Register example: length 0x17 for 22 bytes after it (a client that copied it hung).
        string[] page =
        [
            "## Example sessions",
            "```",
            "→ 00000017 01 01 0000 00000001  0002 6462  0000  00002710 00001388   Register \"db\", \"\", 10 s, warn 5 s",
            "```",
        ];
        var failure = Assert.ThrowsAny<Exception>(() => Check(Examples(page)));
        Assert.Contains("docs/protocol.md:3: \"Register \"db\", \"\", 10 s, warn 5 s\" byte 3 is 0x17 on the page, 0x16 as written", failure.Message, StringComparison.Ordinal);
    }

    private static void Check(List<(int Line, string Direction, string Bytes, string What)> examples)
    {
        uint lastSequence = 0;
        foreach (var (line, direction, shown, what) in examples)
        {
            var expected = what == "Ok" ? Ok(lastSequence) : Described.TryGetValue(what, out var frame)
                ? frame
                : throw new Xunit.Sdk.XunitException($"docs/protocol.md:{line}: no frame is known for \"{what}\"; add it to {nameof(Described)}");
            if (direction == "→")
            {
                lastSequence = (uint)((expected[8] << 24) | (expected[9] << 16) | (expected[10] << 8) | expected[11]);
            }

            // Compare byte by byte; a placeholder skips what it stands for (the rest of the frame, unless it stands
            // only for the length, which the writer decides).
            var position = 0;
            foreach (var token in shown.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (token.StartsWith('<'))
                {
                    if (token == "<length>" && position == 0)
                    {
                        position = 4;
                        continue;
                    }

                    break;
                }

                for (var i = 0; i < token.Length; i += 2, position++)
                {
                    Assert.True(position < expected.Length, $"docs/protocol.md:{line}: \"{what}\" shows more bytes than the frame has ({expected.Length})");
                    var documented = byte.Parse(token.AsSpan(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    Assert.True(documented == expected[position],
                        $"docs/protocol.md:{line}: \"{what}\" byte {position} is 0x{documented:X2} on the page, 0x{expected[position]:X2} as written ({Convert.ToHexString(expected)})");
                }
            }
        }
    }

    [Fact]
    public void A_wrong_byte_on_the_page_would_be_caught()
    {
        // The comparison above must be able to fail: the old page's Register length (0x17 for 22 bytes).
        var wrong = Convert.FromHexString("0000001701010000000000010002646200000000271000001388");
        var right = Described["Register \"db\", \"\", 10 s, warn 5 s"];
        Assert.NotEqual(Convert.ToHexString(right), Convert.ToHexString(wrong));
        Assert.Equal(0x16, right[3]);
    }
}
