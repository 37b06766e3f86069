namespace AppHb.Replication.Tests;

internal static class Bytes
{
    /// <summary><paramref name="count"/> bytes from <paramref name="random"/> (seeded: a run can be repeated).</summary>
    public static byte[] Random(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
