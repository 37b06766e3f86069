using System.Globalization;
using System.IO.Hashing;
using System.Text;
using AppHb.Core.Cluster;

namespace AppHb.Replication.Apply;

/// <summary>Where the replica stands (its last whole cut), kept in one file of two fixed slots written in turn in
/// place, each with a counter and a CRC-32: a write costs one fdatasync (not a new file's fsync, rename and directory
/// fsync), and one torn by a crash leaves the other slot, the position before, which the redo log then finishes
/// again. The file of the format before 2026-12-02 ("applied": "SEQUENCE GENERATION NODE", replaced whole) is read
/// when there is no other.</summary>
internal sealed class ReplicaPosition
{
    private const int SlotSize = 64;
    private readonly string _path;
    private readonly string _legacyPath;
    private long _counter;

    /// <param name="stateDirectory">Where the file lives ("position"; the former "applied" beside it).</param>
    /// <exception cref="InvalidDataException">No slot is whole, or the former file does not say a position: the
    /// replica's position is unknown (named in the message).</exception>
    public ReplicaPosition(string stateDirectory)
    {
        _path = Path.Combine(stateDirectory, "position");
        _legacyPath = Path.Combine(stateDirectory, "applied");
        Current = Read();
    }

    /// <summary>The last cut the replica holds whole; (none, 0) for a replica that never applied one.</summary>
    public (DataGeneration Generation, ulong Sequence) Current { get; private set; }

    /// <summary>Records <paramref name="cut"/>, durably, before it returns.</summary>
    public void Record((DataGeneration Generation, ulong Sequence) cut)
    {
        _counter++;
        var slot = Slot(_counter, cut);
        if (!File.Exists(_path))
        {
            // Made once, whole, the usual way (the other slot holds nothing whole); the former file goes after it.
            var both = new byte[2 * SlotSize];
            slot.CopyTo(both, (int)(_counter % 2) * SlotSize);
            AppHb.Linux.Files.DurableFile.Replace(_path, both);
            File.Delete(_legacyPath);
        }
        else
        {
            using var file = new FileStream(_path, FileMode.Open, FileAccess.Write, FileShare.None);
            file.Position = (int)(_counter % 2) * SlotSize;
            file.Write(slot);
            // Data only: the file's size and blocks never change here, and its modification time is not worth a
            // second write to the disk at every cut.
            AppHb.Linux.Files.DurableFile.SyncData(file);
        }

        Current = cut;
    }

    private static byte[] Slot(long counter, (DataGeneration Generation, ulong Sequence) cut)
    {
        var text = $"position {counter} {cut.Sequence} {cut.Generation.Number} {cut.Generation.Node}";
        var line = $"{text} {Crc32.HashToUInt32(Encoding.ASCII.GetBytes(text)):x8}";
        return Encoding.ASCII.GetBytes(line.PadRight(SlotSize - 1) + "\n");
    }

    private (DataGeneration, ulong) Read()
    {
        if (!File.Exists(_path))
        {
            return ReadLegacy();
        }

        var bytes = File.ReadAllBytes(_path);
        (long Counter, DataGeneration Generation, ulong Sequence)? best = null;
        for (var offset = 0; offset + SlotSize <= bytes.Length; offset += SlotSize)
        {
            var fields = Encoding.ASCII.GetString(bytes, offset, SlotSize).Trim('\0').TrimEnd().Split(' ');
            if (fields.Length == 6 && fields[0] == "position"
                && uint.TryParse(fields[5], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var crc)
                && Crc32.HashToUInt32(Encoding.ASCII.GetBytes(string.Join(' ', fields[..5]))) == crc
                && long.TryParse(fields[1], CultureInfo.InvariantCulture, out var counter)
                && ulong.TryParse(fields[2], CultureInfo.InvariantCulture, out var sequence)
                && ulong.TryParse(fields[3], CultureInfo.InvariantCulture, out var number)
                && ushort.TryParse(fields[4], CultureInfo.InvariantCulture, out var node)
                && (best is null || counter > best.Value.Counter))
            {
                best = (counter, new DataGeneration(number, node), sequence);
            }
        }

        if (best is not { } found)
        {
            throw new InvalidDataException($"{_path}: neither of its slots holds a whole position: the replica's position is unknown; a full resync must rebuild it");
        }

        _counter = found.Counter;
        return (found.Generation, found.Sequence);
    }

    private (DataGeneration, ulong) ReadLegacy()
    {
        if (!File.Exists(_legacyPath))
        {
            return (DataGeneration.None, 0);
        }

        var parts = File.ReadAllText(_legacyPath).Split(' ', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 3 || !ulong.TryParse(parts[0], CultureInfo.InvariantCulture, out var sequence)
            || !ulong.TryParse(parts[1], CultureInfo.InvariantCulture, out var number) || !ushort.TryParse(parts[2], CultureInfo.InvariantCulture, out var node))
        {
            throw new InvalidDataException($"{_legacyPath}: not \"SEQUENCE GENERATION NODE\": the replica's position is unknown; a full resync must rebuild it");
        }

        return (new DataGeneration(number, node), sequence);
    }
}
