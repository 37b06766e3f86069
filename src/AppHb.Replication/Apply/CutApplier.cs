using System.Globalization;
using System.Text;
using AppHb.Core.Cluster;
using AppHb.Linux.Files;
using AppHb.Replication.Journal;

namespace AppHb.Replication.Apply;

/// <summary>Makes a cut (every record up to a <see cref="CutRecord"/>) visible in the replica together, so that the
/// replica is always at a cut, never between two, even after a crash (docs/replication-design.md, "What write order
/// can mean"). The records are first staged outside the replica (each new file version built, or a small change to a
/// large file kept as a patch to write in place), then the steps that install them are written to a redo log and made
/// durable, then carried out in order, each one's completion appended to the log. <see cref="Recover"/> (at start)
/// finishes a cut whose log is whole, or discards one whose log is not (the replica never saw it). Not thread-safe:
/// one applier per replica.</summary>
public sealed class CutApplier
{
    private const string LogName = "redo.log";
    private readonly ReplicaApplier _replica;
    private readonly ReplicaPosition _position;
    private readonly string _state;
    private readonly string _staging;
    private readonly StagingAreas _areas;

    /// <param name="replicaRoot">The replica.</param>
    /// <param name="stateDirectory">Where the staging area and the redo log live: on the replica's filesystem (a
    /// staged file is renamed into place), outside the replicated tree.</param>
    public CutApplier(string replicaRoot, string stateDirectory)
        : this(ReplicatedScope.Whole(replicaRoot), stateDirectory)
    {
    }

    /// <param name="scope">What the replica holds (journal paths are relative to its root).</param>
    /// <param name="stateDirectory">Where the staging area and the redo log live: on the replica's filesystem (a
    /// staged file is renamed into place), outside the replicated paths.</param>
    public CutApplier(ReplicatedScope scope, string stateDirectory)
    {
        Scope = scope ?? throw new ArgumentNullException(nameof(scope));
        _replica = new ReplicaApplier(scope.Root);
        _state = Path.GetFullPath(stateDirectory);
        _areas = new StagingAreas(_state);
        _staging = _areas.Primary;
        foreach (var member in scope.Members.Select(scope.Full))
        {
            // Every member's filesystem has its area from the start, made durable with the others' (a rename or a
            // deletion there too, when nothing was staged there yet): a directory's own, not its parent's (it may be
            // a mount point); a file's parent's.
            _areas.For(Directory.Exists(member) ? Path.Combine(member, StagingAreas.AreaName) : member);
        }

        _position = new ReplicaPosition(_state);
        _unfinished = LogUnfinished();
    }

    /// <summary>Whether the redo log names a cut the replica's position does not hold yet (a crash, or an install
    /// not finished): no other cut may begin before it is finished.</summary>
    private bool _unfinished;

    /// <summary>What the replica holds.</summary>
    public ReplicatedScope Scope { get; }

    /// <summary>The replica's root (absolute).</summary>
    public string ReplicaRoot => _replica.Root;

    private string LogPath => Path.Combine(_state, LogName);

    /// <summary>The last cut the replica holds whole (its sequence and generation): persisted with the cut, so a
    /// receiver that restarts resumes right after it. (0, none) for a replica that never applied one.</summary>
    public (DataGeneration Generation, ulong Sequence) LastApplied => _position.Current;

    /// <summary>Applies the records of one cut; the last must be its <see cref="CutRecord"/>.</summary>
    /// <exception cref="IOException">The replica or the state directory refused; the message names the path.</exception>
    /// <exception cref="InvalidOperationException">A crash left a cut unfinished and <see cref="Recover"/> has not run.</exception>
    public void ApplyCut(IReadOnlyList<JournalRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0 || records[^1] is not CutRecord)
        {
            throw new ArgumentException("a cut's records end with its cut record", nameof(records));
        }

        using var staged = Begin();
        foreach (var record in records)
        {
            staged.Add(record);
        }

        staged.Apply();
    }

    /// <summary>Starts staging the next cut (or several consecutive ones, applied as one) record by record as they
    /// arrive, so that only the steps, never the records' contents, stay in memory however large the cut.</summary>
    /// <exception cref="InvalidOperationException">A crash left a cut unfinished and <see cref="Recover"/> has not run.</exception>
    public StagedCut Begin()
    {
        ThrowIfUnfinished();
        return new StagedCut(this, _replica.Root, _areas);
    }

    /// <summary>Installs a staged cut: every staged file made durable at once (one syncfs, not an fsync each) before
    /// the redo log names them, then the log, then its steps carried out. When this returns the cut is durable (a
    /// crash from here on is finished by <see cref="Recover"/>) and visible in the replica, so the peer may be told;
    /// <see cref="Finish"/> then makes the steps themselves durable and moves the replica's recorded position.</summary>
    /// <returns>The cut, which <see cref="Finish"/> takes.</returns>
    internal (DataGeneration Generation, ulong Sequence) Install(CutRecord cut, IReadOnlyList<string> steps)
    {
        ThrowIfUnfinished();
        _areas.SyncFileSystems();

        var installing = (cut.Generation, cut.Sequence);
        _unfinished = true;
        RedoLog.Write(LogPath, installing, steps);
        CarryOut(installing, steps, done: 0);
        return installing;
    }

    /// <summary>Writing a cut's log over an unfinished one's would lose its steps, and the replica would stay between
    /// cuts.</summary>
    private void ThrowIfUnfinished()
    {
        if (_unfinished)
        {
            throw new InvalidOperationException($"{LogPath}: a cut is unfinished: Recover() before applying the next one");
        }
    }

    /// <summary>Removes what a staged cut that is not applied left in the staging area; never while a redo log
    /// names staged files (a recovery needs them).</summary>
    internal void DiscardStaged()
    {
        if (!_unfinished)
        {
            Discard();
        }
    }

    /// <summary>At start: finishes the cut a crash interrupted (its log is whole), or discards one that never began
    /// (its log is not); then applies the acknowledged cuts the receive log holds after it (<see cref="ApplyReceived"/>).
    /// What it did, or null when there was nothing to do.</summary>
    /// <exception cref="InvalidDataException">The log is whole but not a log (named in the message).</exception>
    public string? Recover()
    {
        var log = RedoLog.Read(LogPath);
        if (log is null && File.Exists(LogPath))
        {
            // Torn while it was written: no step of it was carried out.
            File.Delete(LogPath);
            _unfinished = false;
            Discard();
            var discarded = $"{LogPath}: an unfinished log discarded: the replica stays at the cut before";
            return ApplyReceived() is { } afterIt ? $"{discarded}; {afterIt}" : discarded;
        }

        if (log is null || log.Cut == LastApplied)
        {
            _unfinished = false;
            Discard();
            return ApplyReceived();
        }

        Carry(log.Cut, log.Steps, log.Done);
        var cut = $"cut {log.Cut.Sequence}";
        var finished = log.Done < log.Steps.Count
            ? $"{LogPath}: {cut} finished from step {log.Done + 1} of {log.Steps.Count}"
            : $"{LogPath}: {cut} finished (all {log.Steps.Count} of its steps were carried out; its position is recorded now)";
        return ApplyReceived() is { } received ? $"{finished}; {received}" : finished;
    }

    /// <summary>Opens the receive log (<see cref="ReceiveLog"/>) in the state directory: for a receiver, one per
    /// connection.</summary>
    public ReceiveLog OpenReceiveLog() => ReceiveLog.Open(_state);

    /// <summary>Applies the whole cuts the receive log holds right after the replica's position: cuts acknowledged
    /// to the peer (durable in the log) whose apply a crash, a failed write or a stop interrupted. Before a receiver
    /// resumes, and before this node's replica becomes the data it serves (a takeover). What it applied, or null.</summary>
    /// <exception cref="IOException">The replica or the state directory refused; the message names the path.</exception>
    public string? ApplyReceived()
    {
        if (_unfinished)
        {
            // An install that failed part way (its redo log whole): finished first; it applies the log after it.
            return Recover();
        }

        if (!File.Exists(ReceiveLog.PathIn(_state)))
        {
            return null;
        }

        IReadOnlyList<JournalRecord> records;
        using (var log = OpenReceiveLog())
        {
            records = log.CutsAfter(LastApplied.Sequence);
        }

        if (records.Count == 0)
        {
            return null;
        }

        var start = 0;
        var cuts = 0;
        for (var i = 0; i < records.Count; i++)
        {
            if (records[i] is CutRecord)
            {
                ApplyCut([.. records.Skip(start).Take(i + 1 - start)]);
                start = i + 1;
                cuts++;
            }
        }

        return $"{ReceiveLog.PathIn(_state)}: {cuts} acknowledged cut{(cuts == 1 ? "" : "s")} (records {records[0].Sequence} to {records[^1].Sequence}) applied";
    }

    private bool LogUnfinished()
    {
        try
        {
            return RedoLog.Read(LogPath) is { } log ? log.Cut != LastApplied : File.Exists(LogPath);
        }
        catch (InvalidDataException)
        {
            // Recover() says what is wrong with it.
            return true;
        }
    }

    private void Carry((DataGeneration Generation, ulong Sequence) cut, IReadOnlyList<string> steps, int done)
    {
        CarryOut(cut, steps, done);
        Finish(cut);
    }

    private void CarryOut((DataGeneration Generation, ulong Sequence) cut, IReadOnlyList<string> steps, int done)
    {
        using (var log = new FileStream(LogPath, FileMode.Append, FileAccess.Write))
        {
            var patched = false;
            for (var i = done; i < steps.Count; i++)
            {
                var parts = steps[i].Split(' ');
                var recordStep = parts[0] == "record";
                if (parts[0] == "patch")
                {
                    // Safe to carry out again for the same reason as an install: no later step of the cut replaces
                    // its file before a record step has made it durable (StagedCut supersedes it otherwise). Absent,
                    // the file was renamed or deleted by the record step after it, durable with the patch before.
                    var target = Path.Combine(_replica.Root, Decode(parts[2]));
                    if (File.Exists(target))
                    {
                        ReplicaApplier.PatchInPlace(target, ReadPatch(_staging, parts[1]));
                        patched = true;
                    }
                }
                else if (parts[0] == "attributes")
                {
                    // Safe to carry out again (the same values set again), so no sync of its own.
                    ApplyOnce(JournalCodec.Decode(Convert.FromBase64String(parts[1])).Record!);
                }
                else if (!recordStep)
                {
                    var file = StagedFile(parts[1]);
                    var target = Path.Combine(_replica.Root, Decode(parts[2]));
                    // Installed already when the crash came after the rename and before its "done". An install is
                    // safe to carry out again (its staged file exists until it is installed), so it is not made
                    // durable on its own: the next record step's syncfs, or the cut's at the end, does.
                    if (File.Exists(file))
                    {
                        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                        File.Move(file, target, overwrite: true);
                    }
                }
                else
                {
                    if (patched)
                    {
                        // A patch's blocks are written in place, not in a staged file synced before the log: they
                        // reach the disk before a rename or a deletion could carry their file away unpatched.
                        SyncReplica();
                        patched = false;
                    }

                    ApplyOnce(JournalCodec.Decode(Convert.FromBase64String(parts[1])).Record!);
                }

                log.Write(RedoLog.DoneLine(cut, i));
                log.Flush();
                if (recordStep)
                {
                    // A record step (a rename, a deletion) is not safe to carry out again once a later step reused
                    // its path: it and its "done" are durable, with every step before it, before the next step runs.
                    DurableFile.SyncFileSystem(_state);
                    _areas.SyncFileSystems(besides: _areas.PrimaryDevice);
                }
            }
        }

    }

    /// <summary>The end of a cut whose steps are carried out: the installs since the last record step made durable,
    /// then the replica's position recorded (the redo log stays: a log whose cut is the position is finished).</summary>
    internal void Finish((DataGeneration Generation, ulong Sequence) cut)
    {
        // The installs since the last record step, durable before the replica's position says the cut is in.
        SyncReplica();
        _position.Record(cut);
        _unfinished = false;
        Discard();
    }

    /// <summary>A step that is not an install, carried out again after a crash only when it had not taken effect.</summary>
    private void ApplyOnce(JournalRecord record)
    {
        var path = Path.Combine(_replica.Root, record.Path);
        switch (record)
        {
            case RenameRecord when !Path.Exists(path):
            case DeleteRecord when !Path.Exists(path):
            // Gone: renamed or deleted by a record step after it, carried out before the crash; a journaling
            // filesystem commits that rename or deletion after the change that came before it.
            case AttributesRecord when !Path.Exists(path):
            case DirectoryRecord when Directory.Exists(path):
                return;
            default:
                _replica.Apply(record);
                return;
        }
    }

    private void Discard()
    {
        foreach (var file in _areas.All.Where(Directory.Exists).SelectMany(Directory.EnumerateFiles))
        {
            File.Delete(file);
        }
    }

    /// <summary>Every filesystem the replica's files are on made durable: the root's, and the staging areas' (one
    /// per filesystem a version was staged on; usually the root's own, synced once).</summary>
    private void SyncReplica()
    {
        DurableFile.SyncFileSystem(_replica.Root);
        // Read once (the root may be made after the applier): not a statx per cut.
        _rootDevice ??= FileSystems.DeviceOf(_replica.Root);
        _areas.SyncFileSystems(besides: _rootDevice);
    }

    private (uint Major, uint Minor)? _rootDevice;

    /// <summary>An install step's staged file: a name in the state directory's staging area, or "@" and the
    /// base64 of the absolute path of one in another filesystem's area.</summary>
    private string StagedFile(string token) =>
        token.StartsWith('@') ? Decode(token[1..]) : Path.Combine(_staging, token);

    /// <summary>How an install step names <paramref name="file"/> (<see cref="StagedFile"/>).</summary>
    internal string StagedToken(string file) =>
        Path.GetDirectoryName(file) == _staging ? Path.GetFileName(file) : "@" + Encode(file);

    /// <summary>The write record a patch step names: "FILE:OFFSET:LENGTH" in the staging area's patch file of its cut,
    /// or (a redo log from before 2026-12-02) a staged file holding that record alone.</summary>
    /// <exception cref="InvalidDataException">The bytes there are not a write record.</exception>
    internal static WriteRecord ReadPatch(string staging, string where)
    {
        var parts = where.Split(':');
        byte[] bytes;
        if (parts.Length == 3)
        {
            using var file = File.OpenHandle(Path.Combine(staging, parts[0]));
            bytes = new byte[int.Parse(parts[2], CultureInfo.InvariantCulture)];
            var offset = long.Parse(parts[1], CultureInfo.InvariantCulture);
            for (var read = 0; read < bytes.Length;)
            {
                var got = RandomAccess.Read(file, bytes.AsSpan(read), offset + read);
                read += got > 0 ? got : throw new InvalidDataException($"{Path.Combine(staging, parts[0])}: the patch at {parts[1]} ends before its {parts[2]} bytes");
            }
        }
        else
        {
            bytes = File.ReadAllBytes(Path.Combine(staging, where));
        }

        return JournalCodec.Decode(bytes).Record as WriteRecord
            ?? throw new InvalidDataException($"{Path.Combine(staging, parts[0])}: the patch at {where} is not a write record");
    }

    internal static string Encode(string path) => Convert.ToBase64String(Encoding.UTF8.GetBytes(path));

    private static string Decode(string text) => Encoding.UTF8.GetString(Convert.FromBase64String(text));
}
