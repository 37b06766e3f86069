using System.Globalization;
using System.IO.Hashing;
using System.Text;
using AppHb.Core.Cluster;

namespace AppHb.Replication.Apply;

/// <summary>The cut applier's redo log: one file, written in place for every cut (never removed, so that writing it
/// costs one fsync, not a new file's fsync, rename and directory fsync). Its first line names the cut and the length
/// and CRC-32 of the steps that follow, so a log torn by a crash while it was written is recognised and ignored (no
/// step was carried out before it was whole and durable); each step carried out appends a "done" line naming the cut,
/// so that lines a longer earlier log left beyond the end are never counted. A log whose cut is the replica's
/// recorded position is finished. The format before 2026-12-02 (header "cut SEQ GEN NODE", a file removed once
/// finished) is still read, so that an upgrade finishes what a crash left.</summary>
internal static class RedoLog
{
    private const string Header = "cut2";
    private const string LegacyHeader = "cut";
    private const string End = "end";

    /// <summary>A log read back: the cut it installs, its steps, how many are done; or why it is not whole.</summary>
    internal sealed record Content((DataGeneration Generation, ulong Sequence) Cut, IReadOnlyList<string> Steps, int Done);

    /// <summary>Writes the log of <paramref name="cut"/> over whatever the file held, durably (fsync) before it
    /// returns; creating the file also syncs its directory.</summary>
    public static void Write(string path, (DataGeneration Generation, ulong Sequence) cut, IReadOnlyList<string> steps)
    {
        var body = Encoding.UTF8.GetBytes($"{string.Join('\n', steps)}\n{End}\n");
        var head = Encoding.UTF8.GetBytes(
            $"{Header} {cut.Sequence} {cut.Generation.Number} {cut.Generation.Node} {body.Length} {Crc32.HashToUInt32(body):x8}\n");
        var created = !File.Exists(path);
        using (var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None))
        {
            file.Write(head);
            file.Write(body);
            // What an earlier, longer log left beyond is cut off (a crash may keep it: the "done" lines name their cut).
            file.SetLength(head.Length + body.Length);
            file.Flush(flushToDisk: true);
        }

        if (created)
        {
            AppHb.Linux.Files.DurableFile.SyncDirectory(Path.GetDirectoryName(path)!);
        }
    }

    /// <summary>The line that says step <paramref name="step"/> of <paramref name="cut"/> is carried out.</summary>
    public static byte[] DoneLine((DataGeneration Generation, ulong Sequence) cut, int step) =>
        Encoding.UTF8.GetBytes($"done {cut.Sequence} {cut.Generation.Number} {cut.Generation.Node} {step}\n");

    /// <summary>Reads the log; null when there is none, or it is not whole (torn while written: nothing of it was
    /// carried out).</summary>
    /// <exception cref="InvalidDataException">Whole by its checksum, yet not a log (named in the message).</exception>
    public static Content? Read(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        var newline = Array.IndexOf(bytes, (byte)'\n');
        if (newline < 0)
        {
            return null;
        }

        var head = Encoding.UTF8.GetString(bytes, 0, newline).Split(' ');
        if (head[0] == LegacyHeader)
        {
            return ReadLegacy(path, Encoding.UTF8.GetString(bytes).Split('\n'));
        }

        if (head.Length != 6 || head[0] != Header || !int.TryParse(head[4], CultureInfo.InvariantCulture, out var length)
            || length < 0 || newline + 1 + length > bytes.Length
            || !uint.TryParse(head[5], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var crc)
            || Crc32.HashToUInt32(bytes.AsSpan(newline + 1, length)) != crc)
        {
            return null;
        }

        var cut = Cut(path, head[1], head[2], head[3]);
        var lines = Encoding.UTF8.GetString(bytes, newline + 1, length).Split('\n');
        var end = Array.IndexOf(lines, End);
        if (end < 0)
        {
            throw new InvalidDataException($"{path}: whole by its checksum, but its steps do not end with \"{End}\"");
        }

        var done = 0;
        foreach (var line in Encoding.UTF8.GetString(bytes, newline + 1 + length, bytes.Length - newline - 1 - length).Split('\n'))
        {
            if (line != Encoding.UTF8.GetString(DoneLine(cut, done)).TrimEnd('\n'))
            {
                break;
            }

            done++;
        }

        return new Content(cut, lines[..end], done);
    }

    private static Content? ReadLegacy(string path, string[] lines)
    {
        var end = Array.IndexOf(lines, End);
        var head = lines[0].Split(' ');
        if (end < 1 || head.Length != 4)
        {
            return null;
        }

        var done = lines.Skip(end + 1).Count(l => l.StartsWith("done ", StringComparison.Ordinal));
        return new Content(Cut(path, head[1], head[2], head[3]), lines[1..end], done);
    }

    private static (DataGeneration, ulong) Cut(string path, string sequence, string number, string node) =>
        ulong.TryParse(sequence, CultureInfo.InvariantCulture, out var s) && ulong.TryParse(number, CultureInfo.InvariantCulture, out var n)
            && ushort.TryParse(node, CultureInfo.InvariantCulture, out var d)
            ? (new DataGeneration(n, d), s)
            : throw new InvalidDataException($"{path}: \"{sequence} {number} {node}\" does not name a cut");
}
