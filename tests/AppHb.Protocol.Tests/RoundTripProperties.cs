using AppHb.Protocol;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Protocol.Tests;

/// <summary>Every message survives encode then decode, whatever its field values.</summary>
public class RoundTripProperties
{
    private static readonly Gen<string> Names = Gen.Elements("a", "db", "web-1", "naïve", "日本", "x.y_z")
        .SelectMany(prefix => Gen.Choose(0, 100).Select(n => prefix + n));

    private static void Check(Property property) => property.QuickCheckThrowOnFailure();

    [Fact]
    public void Register_round_trips() => Check(Prop.ForAll(
        Arb.From(from name in Names from instance in Gen.OneOf(Gen.Constant(string.Empty), Names)
                 from interval in ArbMap.Default.GeneratorFor<uint>() from warn in ArbMap.Default.GeneratorFor<uint>()
                 from seq in ArbMap.Default.GeneratorFor<uint>()
                 select (new RegisterRequest(name, instance, interval, warn), seq)),
        t => RoundTrip(t.Item1, t.seq) == t.Item1));

    [Fact]
    public void Replies_round_trip() => Check(Prop.ForAll(
        Arb.From(from id in ArbMap.Default.GeneratorFor<ulong>() from pid in ArbMap.Default.GeneratorFor<int>()
                 from uid in ArbMap.Default.GeneratorFor<uint>() from gid in ArbMap.Default.GeneratorFor<uint>()
                 select new RegisteredReply(id, pid, uid, gid)),
        reply => RoundTrip(reply, 5) == reply));

    [Fact]
    public void Errors_round_trip() => Check(Prop.ForAll(
        Arb.From(from code in Gen.Elements(Enum.GetValues<ErrorCode>()) from text in Names select new ErrorReply(code, text)),
        reply => RoundTrip(reply, 1) == reply));

    [Fact]
    public void Any_prefix_of_a_valid_stream_never_throws_and_frames_split_anywhere_reassemble() => Check(Prop.ForAll(
        Arb.From(Gen.Choose(0, 200)),
        cut =>
        {
            var stream = FrameWriter.ToArray(new RegisterRequest("svc", "i", 1000, 500), 1)
                .Concat(FrameWriter.EmptyToArray(FrameType.Beat, 0))
                .Concat(FrameWriter.ToArray(new SetWarnRequest(10), 2)).ToArray();
            cut = Math.Min(cut, stream.Length);
            var frames = 0;
            var offset = 0;
            while (FrameReader.TryReadFrame(stream.AsSpan(offset, cut - offset), out var header))
            {
                offset += header.FrameLength;
                frames++;
            }

            // Whatever the cut, only whole frames are taken, and all three once the stream is whole.
            return offset <= cut && (cut < stream.Length || frames == 3);
        }));

    private static T RoundTrip<T>(T message, uint sequence) where T : IMessage<T>
    {
        var bytes = FrameWriter.ToArray(message, sequence);
        Assert.True(FrameReader.TryReadFrame(bytes, out var header));
        Assert.Equal(T.Type, header.Type);
        Assert.Equal(sequence, header.Sequence);
        Assert.Equal(bytes.Length, header.FrameLength);
        return T.Read(bytes.AsSpan(FrameFormat.HeaderSize, header.PayloadLength));
    }
}
