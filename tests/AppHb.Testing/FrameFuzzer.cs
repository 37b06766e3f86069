using System.Buffers.Binary;
using AppHb.Protocol;

namespace AppHb.Testing;

/// <summary>Generates abusive connections: random bytes, mutated valid streams, hostile lengths.</summary>
public static class FrameFuzzer
{
    /// <summary>One connection's worth of bytes, and how many frames they stand for.</summary>
    public static (byte[] Bytes, int Frames) Batch(Random random)
    {
        var output = new List<byte>();
        var frames = random.Next(4, 12);
        var valid = new List<byte[]>
        {
            FrameWriter.ToArray(new RegisterRequest("fz" + random.Next(1000), random.Next(3).ToString(System.Globalization.CultureInfo.InvariantCulture), (uint)random.Next(1, 5000), (uint)random.Next(0, 3000)), (uint)random.Next()),
        };
        for (var i = 0; i < frames; i++)
        {
            valid.Add(random.Next(6) switch
            {
                0 => FrameWriter.ToArray(new SetIntervalRequest((uint)random.Next()), (uint)random.Next()),
                1 => FrameWriter.ToArray(new SetWarnRequest((uint)random.Next(0, 100_000)), (uint)random.Next()),
                2 => FrameWriter.EmptyToArray(FrameType.StatusRequest, (uint)random.Next()),
                3 => FrameWriter.EmptyToArray(FrameType.Unregister, 1),
                _ => FrameWriter.EmptyToArray(FrameType.Beat, 0, random.Next(2) == 0 ? FrameFlags.AckRequested : FrameFlags.None),
            });
        }

        switch (random.Next(5))
        {
            case 0:
                // Pure noise.
                var noise = new byte[random.Next(1, 2048)];
                random.NextBytes(noise);
                return (noise, frames);
            case 1:
                // A hostile length prefix followed by a trickle.
                var hostile = new byte[16];
                BinaryPrimitives.WriteUInt32BigEndian(hostile, (uint)random.Next(FrameFormat.MaxFrameSize, int.MaxValue));
                return (hostile, 1);
            default:
                // Valid frames with bit flips, truncations and duplicated bytes.
                foreach (var frame in valid)
                {
                    var copy = (byte[])frame.Clone();
                    if (random.Next(3) == 0)
                    {
                        copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
                    }

                    output.AddRange(random.Next(10) == 0 ? copy[..random.Next(copy.Length)] : copy);
                }

                return (output.ToArray(), valid.Count);
        }
    }
}
