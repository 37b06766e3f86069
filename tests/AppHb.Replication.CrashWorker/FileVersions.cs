using AppHb.Core.Cluster;
using AppHb.Replication.Blocks;
using AppHb.Replication.Journal;

namespace AppHb.Replication.CrashWorker;

/// <summary>The versions the worker writes, the same for the worker and the test that checks the replica: version 0
/// of a file is empty; each next one edits a few random blocks and changes the length (grows or shrinks); odd files
/// keep one length of 256 KiB.</summary>
public sealed class FileVersions(int file, int blockSize)
{
    private readonly Random _random = new(file * 1_000_003 + 17);
    private byte[] _current = [];

    public int Version { get; private set; }

    public byte[] Current => _current;

    /// <summary>Moves to the next version; the write record that turns the previous version into it.</summary>
    public WriteRecord Next(ulong sequence)
    {
        var previous = _current;
        var length = Math.Max(0, previous.Length + _random.Next(-20_000, 60_000));
        if (length > 400_000)
        {
            length = _random.Next(0, 100_000);
        }

        if (file % 2 == 1)
        {
            // Odd files keep 256 KiB after their first version: their edits are small changes to a large file, which
            // a cut writes in place under its redo log instead of as a new version.
            length = 256 << 10;
        }

        var next = new byte[length];
        previous.AsSpan(0, Math.Min(previous.Length, length)).CopyTo(next);
        for (var edits = _random.Next(1, 6); edits > 0 && length > 0; edits--)
        {
            var at = _random.Next(0, length);
            _random.NextBytes(next.AsSpan(at, Math.Min(length - at, _random.Next(1, blockSize * 2))));
        }

        var changed = BlockIndex.Of(next, blockSize).ChangedFrom(BlockIndex.Of(previous, blockSize));
        _current = next;
        Version++;
        return new WriteRecord(sequence, new DataGeneration(1, 1), Name(file), (ulong)length, blockSize,
            [.. changed.Select(i => new BlockChange(i, next.AsSpan((int)i * blockSize, Math.Min(blockSize, length - (int)i * blockSize)).ToArray()))]);
    }

    public static string Name(int file) => $"data/file{file}";

    /// <summary>The content of <paramref name="file"/> at <paramref name="version"/>, made the way the worker made it.</summary>
    public static byte[] At(int file, int version, int blockSize)
    {
        var versions = new FileVersions(file, blockSize);
        while (versions.Version < version)
        {
            versions.Next(0);
        }

        return versions.Current;
    }
}
