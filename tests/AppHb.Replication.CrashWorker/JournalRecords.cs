using AppHb.Core.Cluster;
using AppHb.Replication.Journal;

namespace AppHb.Replication.CrashWorker;

/// <summary>The records the worker journals, the same for the worker and the test that reads its journal back: the
/// record numbered N is a write of a few KiB (now and then one of 100 KiB, a batch past the journal's small-batch size)
/// whose bytes follow from N alone.</summary>
public static class JournalRecords
{
    public static WriteRecord Numbered(ulong sequence)
    {
        var random = new Random(unchecked((int)sequence * 7919 + 3));
        var length = sequence % 50 == 0 ? 100 << 10 : random.Next(1, 8 << 10);
        var bytes = new byte[length];
        random.NextBytes(bytes);
        var blocks = Enumerable.Range(0, (length + 4095) / 4096)
            .Select(i => new BlockChange((uint)i, bytes.AsMemory(i * 4096, Math.Min(4096, length - i * 4096))))
            .ToArray();
        return new WriteRecord(sequence, new DataGeneration(1, 1), $"data/file{sequence % 7}", (ulong)length, 4096, blocks);
    }

    /// <summary>How many records the batch that starts at <paramref name="sequence"/> holds (1 to 20).</summary>
    public static int BatchAt(ulong sequence) => new Random(unchecked((int)sequence)).Next(1, 21);
}
