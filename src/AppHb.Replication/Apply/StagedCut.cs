using AppHb.Replication.Journal;

namespace AppHb.Replication.Apply;

/// <summary>A cut (or several consecutive cuts applied as one) staged record by record as the records arrive: each
/// new file version is built in the staging area from what its path holds at that point (the replica's file, a
/// version staged earlier, or what a rename brought there), or a small change to a large file is staged as a patch
/// written in place when the cut is installed, and every other record becomes a step as it is; only the
/// steps stay in memory, so a resync of gigabytes needs no more of the standby's memory than one record.
/// <see cref="Apply"/> installs everything up to the last cut record added (<see cref="CutApplier"/>'s redo log);
/// disposed without it, what was staged is removed and the replica never sees it. Not thread-safe.</summary>
public sealed class StagedCut : IDisposable
{
    private readonly CutApplier _owner;
    private readonly string _root;
    private readonly string _staging;
    private readonly StagingAreas _areas;
    private readonly List<string?> _steps = [];
    /// <summary>Installs since the last record step, by path (their place in the steps): see <see cref="Add"/>.</summary>
    private readonly Dictionary<string, int> _installs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> _holds = new(StringComparer.Ordinal);
    private readonly List<(string From, string To)> _renames = [];
    /// <summary>Paths this cut deleted or renamed away: a write under one is never patched in place.</summary>
    private readonly List<string> _removed = [];
    /// <summary>The staged records of the writes patched in place, by path, in order (what the replica's file will
    /// hold once they are carried out is rebuilt from them when a later record needs it).</summary>
    private readonly Dictionary<string, List<string>> _patches = new(StringComparer.Ordinal);
    /// <summary>Patch steps since the last record step, by path (their places in the steps).</summary>
    private readonly Dictionary<string, List<int>> _patchSteps = new(StringComparer.Ordinal);
    /// <summary>Attribute steps since the last record step, by path (their places in the steps).</summary>
    private readonly Dictionary<string, List<int>> _attributeSteps = new(StringComparer.Ordinal);
    /// <summary>The mode, owner and group attributes records of this cut gave a path, by path (moved with
    /// renames): their steps are carried out only at the install, so a version of that path staged after one is
    /// built with them, not with what its basis holds still (the old ones, which the install would have put back).</summary>
    private readonly Dictionary<string, (UnixFileMode Mode, uint Owner, uint Group)> _attributes = new(StringComparer.Ordinal);
    private int _stagedFiles;
    private (string Name, FileStream Stream)? _patchFile;
    private string? _prefix;
    /// <summary>How many steps the records up to <see cref="LastCut"/> made.</summary>
    private int _stepsAtCut;
    private bool _applied;
    /// <summary>The cut <see cref="Install"/> carried out.</summary>
    private (AppHb.Core.Cluster.DataGeneration Generation, ulong Sequence)? _installed;

    internal StagedCut(CutApplier owner, string root, StagingAreas areas)
    {
        _owner = owner;
        _root = root;
        _areas = areas;
        _staging = areas.Primary;
    }

    /// <summary>Records added after the last cut record (all of them while none was added).</summary>
    public int RecordsAfterCut { get; private set; }

    /// <summary>The last cut record added: what <see cref="Apply"/> would install up to; null while none was.</summary>
    public CutRecord? LastCut { get; private set; }

    /// <summary>Whether a cut record was added: there is something whole to apply.</summary>
    public bool HoldsCut => LastCut is not null;

    /// <summary>Whether the records added after the last cut record changed a version staged before it (a further
    /// part written into it, or its install superseded), so that what is staged no longer says what that cut alone
    /// would install: <see cref="Apply"/> is then refused until the next cut record.</summary>
    public bool ChangedBeforeCut { get; private set; }

    /// <summary>Stages one record. A cut record inside (consecutive cuts applied together) only marks where the
    /// records are whole: its own step would only stop the replica between them.</summary>
    /// <exception cref="IOException">The replica or the staging area refused; the message names the path.</exception>
    public void Add(JournalRecord record)
    {
        if (_installed is not null)
        {
            throw new InvalidOperationException($"cut {LastCut!.Sequence} is installed: nothing more is staged with it");
        }

        ArgumentNullException.ThrowIfNull(record);
        ObjectDisposedException.ThrowIf(_applied, this);
        _prefix ??= record.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);
        RecordsAfterCut++;
        switch (record)
        {
            case CutRecord cut:
                LastCut = cut;
                _stepsAtCut = _steps.Count;
                RecordsAfterCut = 0;
                ChangedBeforeCut = false;
                return;
            case WriteRecord write when _installs.TryGetValue(record.Path, out var install) && _holds.GetValueOrDefault(record.Path) is { } staged:
                // The next part of a large change (several write records of one path, nothing between them but
                // installs): into the version staged already, not a copy of it per record.
                ChangedBeforeCut |= install < _stepsAtCut;
                ReplicaApplier.PatchStaged(staged, write);
                return;
            case WriteRecord write when PatchesInPlace(write):
                // A few blocks of a large file: written where they belong when the step is carried out, from the
                // record staged here (so a crash redoes them), instead of a new version copied whole. A database's
                // page writes would otherwise copy the whole database per cut.
                var patch = StagePatch(write);
                (_patches.TryGetValue(record.Path, out var patches) ? patches : _patches[record.Path] = []).Add(patch);
                (_patchSteps.TryGetValue(record.Path, out var steps) ? steps : _patchSteps[record.Path] = []).Add(_steps.Count);
                _steps.Add($"patch {patch} {CutApplier.Encode(record.Path)}");
                return;
            case WriteRecord or CreateRecord:
                var file = NewStagedFile(record.Path);
                // A create's version starts empty: what the path held does not matter, nor the attributes it had.
                if (record is CreateRecord)
                {
                    _attributes.Remove(record.Path);
                }

                ReplicaApplier.Build(file, record is WriteRecord ? Holding(record.Path) : null, record, sync: false,
                    _attributes.TryGetValue(record.Path, out var given) ? given : null);
                _holds[record.Path] = file;
                // Installs and patches are not made durable one by one, so two of one path in a row could reach the
                // disk in either order after a crash (or a patch be carried out again over the later version): only
                // the later one is installed (it was built from the earlier, patches included).
                if (_installs.TryGetValue(record.Path, out var superseded))
                {
                    Supersede(superseded);
                }

                if (_patchSteps.Remove(record.Path, out var patched))
                {
                    patched.ForEach(Supersede);
                }

                // Attribute steps before it too: the version is built with their mode, owner and group, and carries
                // its own time; carried out again after a crash (over this version) they would put an older time back.
                if (_attributeSteps.Remove(record.Path, out var attributed))
                {
                    attributed.ForEach(Supersede);
                }

                _installs[record.Path] = _steps.Count;
                _steps.Add($"install {_owner.StagedToken(file)} {CutApplier.Encode(record.Path)}");
                return;
            case RenameRecord rename:
                // What was at the new path is replaced; what was at the old one is there now.
                JournalPath.RemoveUnder(_attributes, rename.NewPath);
                JournalPath.MoveUnder(_attributes, rename.Path, rename.NewPath);
                _holds[rename.NewPath] = Holding(rename.Path);
                _holds[rename.Path] = null;
                _renames.Add((rename.Path, rename.NewPath));
                _removed.Add(rename.Path);
                break;
            case AttributesRecord attributes when _installs.TryGetValue(record.Path, out var install) && _holds.GetValueOrDefault(record.Path) is { } staged:
                // A version of the path is staged in this part of the cut: it takes them, and its install carries
                // them (a step after the install would also undo the time of a later part written into it).
                ChangedBeforeCut |= install < _stepsAtCut;
                _attributes[attributes.Path] = ((UnixFileMode)(attributes.Mode & 0xfff), attributes.Owner, attributes.Group);
                ReplicaApplier.SetAttributes(staged, attributes);
                return;
            case AttributesRecord attributes:
                // Not a record step: setting the same mode, owner, group and time again is harmless, so it is
                // carried out without a sync of its own (a resync that sets the times of thousands of files would
                // otherwise sync the filesystem once for each).
                _attributes[attributes.Path] = ((UnixFileMode)(attributes.Mode & 0xfff), attributes.Owner, attributes.Group);
                (_attributeSteps.TryGetValue(record.Path, out var set) ? set : _attributeSteps[record.Path] = []).Add(_steps.Count);
                _steps.Add($"attributes {Convert.ToBase64String(JournalCodec.Encode(record))}");
                return;
            case DeleteRecord:
                JournalPath.RemoveUnder(_attributes, record.Path);
                _holds[record.Path] = null;
                _removed.Add(record.Path);
                break;
        }

        // A record step is made durable before the next step runs, so installs and patches on either side of it land
        // in order.
        _installs.Clear();
        _patchSteps.Clear();
        _attributeSteps.Clear();
        _steps.Add($"record {Convert.ToBase64String(JournalCodec.Encode(record))}");
    }

    /// <summary>Installs every record up to the last cut record added (<see cref="CutApplier"/>'s redo log, then its
    /// steps): when this returns the cut is durable on this node (a crash from here on is finished by the applier's
    /// recovery) and visible in the replica, so it may be acknowledged before <see cref="Apply"/> finishes it (the
    /// syncs of the steps themselves, the replica's new position). What was staged after it is dropped (the sender
    /// sends it again from the replica's position); nothing more is staged.</summary>
    /// <exception cref="InvalidOperationException">No cut record was added, or <see cref="ChangedBeforeCut"/>.</exception>
    public void Install()
    {
        ObjectDisposedException.ThrowIf(_applied, this);
        if (_installed is not null)
        {
            return;
        }

        if (LastCut is null)
        {
            throw new InvalidOperationException("nothing whole to apply: no cut record was staged");
        }

        if (RecordsAfterCut > 0 && ChangedBeforeCut)
        {
            throw new InvalidOperationException($"the records after cut {LastCut.Sequence} changed versions it staged: it cannot be applied alone");
        }

        ClosePatches();
        _installed = _owner.Install(LastCut, [.. _steps.Take(_stepsAtCut).OfType<string>()]);
    }

    /// <summary>Installs (unless <see cref="Install"/> did) and finishes the cut: the replica's recorded position is
    /// the last cut record added when this returns.</summary>
    /// <exception cref="InvalidOperationException">No cut record was added, or <see cref="ChangedBeforeCut"/>.</exception>
    public void Apply()
    {
        Install();
        _applied = true;
        _owner.Finish(_installed!.Value);
    }

    /// <summary>A new staged file for a version of <paramref name="path"/>: on its filesystem, so that it is renamed
    /// into place, never copied.</summary>
    private string NewStagedFile(string path) => Path.Combine(_areas.For(Path.Combine(_root, path)), $"{_prefix}.{_stagedFiles++}");

    /// <summary>Appends a patch's record to the cut's one patch file (a file per record cost a file's creation each:
    /// a resync of 2,607 blocks in 256 files spent ~150 ms making them) and returns where it is, as a patch step
    /// names it: "FILE:OFFSET:LENGTH" (<see cref="CutApplier.ReadPatch"/>).</summary>
    private string StagePatch(WriteRecord write)
    {
        if (_patchFile is null)
        {
            var name = $"{_prefix}.patches";
            _patchFile = (name, new FileStream(Path.Combine(_staging, name), FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 1 << 16));
        }

        var at = _patchFile.Value.Stream.Position;
        var length = JournalCodec.WriteTo(write, _patchFile.Value.Stream);
        return FormattableString.Invariant($"{_patchFile.Value.Name}:{at}:{length}");
    }

    /// <summary>What the patch file holds reaches the file system (not the disk: the cut's syncfs does that) before
    /// anything reads it or the redo log names it; closed, so that nothing is left open on a discarded cut.</summary>
    private void ClosePatches()
    {
        _patchFile?.Stream.Dispose();
        _patchFile = null;
    }

    private void Supersede(int step)
    {
        ChangedBeforeCut |= step < _stepsAtCut;
        _steps[step] = null;
    }

    /// <summary>Whether <paramref name="write"/> is patched into the replica's file in place: the file is the
    /// replica's own at that path (nothing earlier in the cut staged, renamed or deleted it or a directory above it),
    /// a regular file with no other name (a diverged replica's copy kept aside is hard-linked to it: a block written
    /// in place would change that copy too), and the record changes at most a quarter of it.</summary>
    private bool PatchesInPlace(WriteRecord write)
    {
        var path = write.Path;
        if (_holds.ContainsKey(path) || _removed.Exists(r => JournalPath.IsAtOrUnder(path, r))
            || _renames.Exists(r => path.StartsWith(r.To + "/", StringComparison.Ordinal)))
        {
            return false;
        }

        var info = new FileInfo(Path.Combine(_root, path));
        return info.Exists && info.LinkTarget is null && write.ContentBytes * 4 <= info.Length && AppHb.Linux.Files.FileSystems.LinkCount(info.FullName) == 1;
    }

    /// <summary>The file that holds what <paramref name="path"/> names at this point of the cut; under a directory
    /// the cut renamed (latest first), what is there now came from under its old path. A replica file with patches
    /// staged is rebuilt (copied, patched) in the staging area first: that is what it will hold by then.</summary>
    private string? Holding(string path)
    {
        if (_holds.TryGetValue(path, out var file))
        {
            return file;
        }

        for (var i = _renames.Count - 1; i >= 0; i--)
        {
            var (from, to) = _renames[i];
            if (path.StartsWith(to + "/", StringComparison.Ordinal))
            {
                return Holding(from + path[to.Length..]);
            }
        }

        var replica = Path.Combine(_root, path);
        if (!_patches.Remove(path, out var patches))
        {
            return replica;
        }

        var rebuilt = NewStagedFile(path);
        File.Copy(replica, rebuilt);
        _patchFile?.Stream.Flush();
        foreach (var patch in patches)
        {
            ReplicaApplier.PatchStaged(rebuilt, CutApplier.ReadPatch(_staging, patch));
        }

        _holds[path] = rebuilt;
        return rebuilt;
    }

    /// <summary>Removes what was staged, unless <see cref="Install"/> wrote its redo log: then the log stays for the
    /// applier's recovery to finish (the peer may have been told the cut is durable).</summary>
    public void Dispose()
    {
        ClosePatches();
        if (!_applied)
        {
            _applied = true;
            _owner.DiscardStaged();
        }
    }
}
