using AppHb.Linux.Files;
using AppHb.Replication.Journal;

namespace AppHb.Replication.Apply;

/// <summary>The standby's receive log: the records of the cuts just received, made durable with one fdatasync so
/// that they may be acknowledged before they are applied (a barrier waits for the acknowledgement; the apply's
/// syncfs, redo log and renames follow it, off the barrier's path). One file of a fixed size, made once with every
/// block written, then overwritten in place: a write over blocks already allocated changes no metadata, so its
/// fdatasync writes the data alone and waits for no commit of the filesystem's journal (every sync that carries a
/// new file or a rename does; docs/replication-design.md, "What each kind of sync costs here").
/// <para>A group of cuts is written at the log's start when everything logged before it is applied, otherwise right
/// after the groups still waiting for their apply; each write ends with four zero bytes (no record is that short).
/// Read back (<see cref="CutsAfter"/>) from the start, records are taken while they decode and follow on from the
/// replica's position, and only up to their last whole cut: a group torn by a crash, or older groups' bytes after
/// the last one written, are never applied.</para>
/// <para>One writer (the receiver's receiving task) adds and commits; the applying task only reports what it applied
/// (<see cref="Applied"/>).</para></summary>
public sealed class ReceiveLog : IDisposable
{
    /// <summary>The file's size: groups waiting for their apply, one after the other.</summary>
    public const int Size = 4 << 20;

    /// <summary>What one group may take (larger ones, a resync's or a bulk copy's, are applied and then acknowledged:
    /// their syncs are paid once for many records anyway, and no barrier waits on an idle link behind them).</summary>
    public const int GroupCapacity = 1 << 20;

    private const int EndMark = 4;
    private const string FileName = "received.log";
    private readonly FileStream _file;
    private readonly byte[] _group = new byte[GroupCapacity + EndMark];
    private int _length;
    /// <summary>How much of the group its last cut ends (what <see cref="Commit"/> writes).</summary>
    private int _cutLength;
    private ulong _groupLastCut;
    private bool _overflowed;
    /// <summary>Where the next group goes when earlier ones still wait for their apply.</summary>
    private long _end;
    /// <summary>The last sequence committed to the log (0: none since it was opened or emptied).</summary>
    private ulong _loggedThrough;
    private ulong _appliedThrough;

    private ReceiveLog(FileStream file) => _file = file;

    /// <summary>Opens the log in <paramref name="stateDirectory"/>, making it (whole, synced) when it is not there or
    /// is not of the size this build writes.</summary>
    public static ReceiveLog Open(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, FileName);
        var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            if (file.Length != Size + EndMark)
            {
                // Every block written once (zeros: an empty log): later writes only overwrite them.
                file.SetLength(0);
                file.Write(new byte[Size + EndMark]);
                file.Flush(flushToDisk: true);
                DurableFile.SyncDirectory(stateDirectory);
            }

            return new ReceiveLog(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The log's file name in a state directory.</summary>
    public static string PathIn(string stateDirectory) => Path.Combine(stateDirectory, FileName);

    /// <summary>Whether the group can be committed when it ends with a cut: every record added since the last
    /// commit (or since everything before was applied) fits in it and was added.</summary>
    public bool Holds => !_overflowed;

    /// <summary>The last cut record added (0 before any).</summary>
    public ulong LastCut => _groupLastCut;

    /// <summary>Adds a record, as the journal encodes it, to the group (in memory until <see cref="Commit"/>). Before
    /// the first record of a cut, a group whose cuts are all applied is dropped (nothing in it is needed any more).
    /// Past <see cref="GroupCapacity"/>, or after <see cref="Bypass"/>, the group no longer <see cref="Holds"/> until
    /// its cuts are applied.</summary>
    public void Add(ReadOnlySpan<byte> encoded, ulong sequence, bool cut)
    {
        if (_length == _cutLength && Volatile.Read(ref _appliedThrough) >= _groupLastCut)
        {
            _length = 0;
            _cutLength = 0;
            _overflowed = false;
        }

        if (!_overflowed && _length + encoded.Length > GroupCapacity)
        {
            _overflowed = true;
        }

        if (!_overflowed)
        {
            encoded.CopyTo(_group.AsSpan(_length));
            _length += encoded.Length;
        }

        if (cut)
        {
            _groupLastCut = sequence;
            _cutLength = _length;
        }
    }

    /// <summary>Adds a record (<see cref="Add(ReadOnlySpan{byte}, ulong, bool)"/>), encoded here.</summary>
    public void Add(JournalRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        Add(JournalCodec.Encode(record), record.Sequence, record is CutRecord);
    }

    /// <summary>The records being received go without the log (a resync's): the group no longer
    /// <see cref="Holds"/> until its cuts are applied.</summary>
    public void Bypass() => _overflowed = true;

    /// <summary>The applying task applied every record up to <paramref name="sequence"/> (the replica's position).</summary>
    public void Applied(ulong sequence) => Volatile.Write(ref _appliedThrough, sequence);

    /// <summary>Writes the group's whole cuts and makes them durable (fdatasync), when the group
    /// <see cref="Holds"/> and has a cut: they then survive a crash and may be acknowledged. What follows the last
    /// cut stays for the next group. Nothing is written when the group does not hold, or the log has no room left
    /// behind the groups not applied yet: the cuts are acknowledged once applied.</summary>
    /// <returns>The last cut written, or null when nothing was.</returns>
    /// <exception cref="IOException">The write or its fdatasync failed (named with the file).</exception>
    public ulong? Commit()
    {
        if (_overflowed || _cutLength == 0)
        {
            return null;
        }

        var applied = Volatile.Read(ref _appliedThrough);
        // Every group logged before is applied: this one goes at the start (an append otherwise, after them).
        var at = applied >= _loggedThrough ? 0 : _end;
        if (at + _cutLength > Size)
        {
            return null;
        }

        var tail = _length - _cutLength;
        var ending = _group.AsSpan(_cutLength, Math.Min(tail, EndMark)).ToArray();
        _group.AsSpan(_cutLength, EndMark).Clear();
        RandomAccess.Write(_file.SafeFileHandle, _group.AsSpan(0, _cutLength + EndMark), at);
        DurableFile.SyncData(_file);
        ending.CopyTo(_group.AsSpan(_cutLength));
        _end = at + _cutLength;
        _loggedThrough = _groupLastCut;
        // The records after the cut begin the next group.
        _group.AsSpan(_cutLength, tail).CopyTo(_group);
        _length = tail;
        _cutLength = 0;
        return _loggedThrough;
    }

    /// <summary>Drops the group (what was added and not committed), and empties the log on disk: before the replica's
    /// position is numbered anew (a resync), so that no group of the old numbering could ever seem to follow on from
    /// it. Only when everything logged is applied.</summary>
    public void Forget()
    {
        _length = 0;
        _cutLength = 0;
        _overflowed = false;
        RandomAccess.Write(_file.SafeFileHandle, new byte[EndMark], 0);
        DurableFile.SyncData(_file);
        _end = 0;
        _loggedThrough = 0;
    }

    /// <summary>The whole cuts the log holds right after <paramref name="applied"/>, in order: its records from the
    /// start while they decode and follow on from it, up to the last cut record among them.</summary>
    public IReadOnlyList<JournalRecord> CutsAfter(ulong applied)
    {
        var bytes = new byte[_file.Length];
        RandomAccess.Read(_file.SafeFileHandle, bytes, 0);
        var records = new List<JournalRecord>();
        var whole = 0;
        var at = 0;
        var skipping = true;
        while (at < bytes.Length)
        {
            var decoded = JournalCodec.Decode(bytes.AsSpan(at));
            if (decoded.Status != JournalDecodeStatus.Decoded)
            {
                break;
            }

            at += decoded.Consumed;
            var record = decoded.Record!;
            if (skipping && record.Sequence <= applied)
            {
                // Applied already (a group logged and applied before the ones after it).
                continue;
            }

            skipping = false;
            if (record.Sequence != applied + (ulong)records.Count + 1)
            {
                break;
            }

            records.Add(record);
            if (record is CutRecord)
            {
                whole = records.Count;
            }
        }

        return records[..whole];
    }

    public void Dispose() => _file.Dispose();
}
