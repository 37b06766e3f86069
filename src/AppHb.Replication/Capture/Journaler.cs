using AppHb.Core.Cluster;
using AppHb.Linux.Files;
using AppHb.Replication.Blocks;
using AppHb.Replication.Journal;
using AppHb.Replication.Resync;

namespace AppHb.Replication.Capture;

/// <summary>Turns the capture's changes into journal records, a batch at a time, each batch closed by a cut
/// (docs/replication-design.md, "What write order can mean"): a change names a path, the journaler reads what the
/// path holds now and records what the peer lacks of it. It keeps what the peer has (a block index per file, the
/// directories, the symlinks), so a write ships only the blocks that differ, a rename of something the peer never had
/// becomes a creation, and a directory moved out of the tree becomes the deletion of everything the peer has under
/// it. After an overflow it compares the whole tree with what the peer has (<see cref="Rescan()"/>). Not thread-safe:
/// the capture's pump calls it.</summary>
public sealed class Journaler
{
    private readonly JournalFile _journal;
    private readonly int _blockSize;
    private readonly Dictionary<string, BlockIndex> _files = new(StringComparer.Ordinal);
    private readonly HashSet<string> _directories = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _symlinks = new(StringComparer.Ordinal);
    // The mode, owner and group the peer's files and directories have, where known: a rescan sends what differs (a
    // chmod made while the peer was away raises no change this journal sees again).
    private readonly Dictionary<string, EntryAttributes> _attributes = new(StringComparer.Ordinal);

    private readonly Func<string, bool> _excluded;

    // The dirty set (what a difference resync compares when the journal no longer holds what the peer lacks): every
    // path a record changed, with the last record that changed it, for the records after the peer acknowledged
    // through _acknowledgedThrough. It says everything a peer at a position from _coveredFrom on may lack: set by a
    // resync's cut (the peer then holds the tree as compared), never for a journaler that has not compared yet (an
    // apphbd restart: changes made meanwhile are in no record).
    private readonly Dictionary<string, ulong> _touched = new(StringComparer.Ordinal);
    private readonly Queue<(ulong Sequence, string Path)> _touchOrder = new();
    // For a dirty path that only write records changed (no creation, rename, deletion, attributes), the blocks they
    // wrote: a resync sends those blocks as they are now, without either side reading and hashing the whole file (the
    // replica's copy equals this file at the replica's position everywhere else). Absent: compared by hashes.
    private readonly Dictionary<string, HashSet<uint>> _writtenBlocks = new(StringComparer.Ordinal);
    private long _writtenBlockCount;
    private ulong _acknowledgedThrough;
    private ulong _coveredFrom = ulong.MaxValue;

    /// <summary>At most this many paths in the dirty set; past it, the next resync compares the whole tree.</summary>
    public const int MaxDirtyPaths = 100_000;

    /// <summary>At most this many written blocks are kept for the dirty set's files (16 MB of numbers); past it, a
    /// file written further is compared by hashes instead.</summary>
    public const int MaxWrittenBlocks = 4_000_000;

    /// <param name="excluded">Paths (relative, '/'-separated) never replicated, nor anything under them.</param>
    public Journaler(string root, JournalFile journal, DataGeneration generation, int blockSize = JournalCodec.DefaultBlockSize, Func<string, bool>? excluded = null)
        : this(ReplicatedScope.Whole(root, excluded), journal, generation, blockSize)
    {
    }

    /// <summary>Journals what <paramref name="scope"/> replicates, with paths relative to its root.</summary>
    public Journaler(ReplicatedScope scope, JournalFile journal, DataGeneration generation, int blockSize = JournalCodec.DefaultBlockSize)
    {
        Scope = scope ?? throw new ArgumentNullException(nameof(scope));
        // The barrier's own files are never the application's data; nor what is outside the members.
        _excluded = path => !scope.Replicates(path);
        _journal = journal ?? throw new ArgumentNullException(nameof(journal));
        Generation = generation;
        _blockSize = blockSize;
    }

    /// <summary>What this journal replicates.</summary>
    public ReplicatedScope Scope { get; }

    /// <summary>Whether a path (relative, '/'-separated) is left out of replication: excluded, or the barrier's.</summary>
    public bool IsExcluded(string path) => _excluded(path);

    /// <summary>The generation records are journaled under (the pair's current one on the active node).</summary>
    public DataGeneration Generation { get; }

    /// <summary>Journals one batch of changes and closes it with a cut, then makes it durable (fdatasync). Returns how
    /// many records it journaled, the cuts included (none when nothing differs from what the peer has). A batch whose
    /// content passes <see cref="CutBytes"/> is cut there too, between two changes (never inside a file's records).
    /// <paramref name="cutPublished"/> hears of each cut once it is whole and readable, so it can go to the peer; with
    /// it, the syncs run behind (<see cref="JournalFile.SyncBehind"/>: this returns before they end, and the next
    /// batch is read meanwhile); <paramref name="lastCutPublished"/> hears of the batch's last one only (before
    /// <paramref name="cutPublished"/>).</summary>
    public int Journal(IEnumerable<TreeChange> changes, Action<ulong>? cutPublished = null, Action<ulong>? lastCutPublished = null)
    {
        ArgumentNullException.ThrowIfNull(changes);
        var records = new Batch(_journal, Generation, Touched);
        // Paths already read in this batch since its last rename, deletion or rescan: Refresh reads what a path holds
        // now, after every change of the batch was made, so a second write event of the same path finds nothing new
        // (a writer rewriting pages of a large file queues an event per write; each read the whole file again).
        var refreshed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var change in changes)
        {
            if (records.ContentSinceCut >= CutBytes)
            {
                // A writer faster than this read gave one batch of hundreds of megabytes: as one cut, nothing went to
                // the peer before all of it was read and synced here, and the peer installed it all at once, the link
                // idle meanwhile. A cut here is what a periodic cut under continuous writing is (the design's third
                // point): every file one of its versions, the next barrier exact again.
                records.Cut(cutPublished);
            }

            if (change.Kind is not (TreeChangeKind.Created or TreeChangeKind.Written or TreeChangeKind.Closed or TreeChangeKind.Attributes))
            {
                refreshed.Clear();
            }

            if (change.Kind is TreeChangeKind.Renamed && (Scope.Leads(change.Path) || Scope.Leads(change.NewPath!)))
            {
                // A directory above members moved: what it held is elsewhere now, and what the other path holds is
                // unknown: compare them all, as after an overflow.
                Rescan(records);
                continue;
            }

            if (change.Kind == TreeChangeKind.Renamed && (_excluded(change.Path) || _excluded(change.NewPath!)))
            {
                // Into or out of what is not replicated: to the peer, a deletion or a creation.
                if (!_excluded(change.Path))
                {
                    Forget(change.Path, records);
                }
                else if (!_excluded(change.NewPath!))
                {
                    Refresh(change.NewPath!, records);
                }

                continue;
            }

            if (change.Kind != TreeChangeKind.Overflow && _excluded(change.Path))
            {
                continue;
            }

            switch (change.Kind)
            {
                case TreeChangeKind.Overflow:
                    Rescan(records);
                    break;
                case TreeChangeKind.Created or TreeChangeKind.Written:
                    if (refreshed.Add(change.Path))
                    {
                        // A write's time alone waits for the writer's close: a writer that truncates, then writes,
                        // would otherwise send the truncation's time in a record of its own first.
                        Refresh(change.Path, records, timeAlone: change.Kind == TreeChangeKind.Created);
                    }

                    break;
                case TreeChangeKind.Closed:
                    if (refreshed.Add(change.Path))
                    {
                        Refresh(change.Path, records);
                    }
                    else
                    {
                        // Read in this batch already, content and time: only a time the read did not send is left.
                        TimeAlone(change.Path, records);
                    }

                    break;
                case TreeChangeKind.Attributes:
                    Attributes(change.Path, records);
                    break;
                case TreeChangeKind.Deleted:
                    Forget(change.Path, records);
                    break;
                case TreeChangeKind.Renamed:
                    Rename(change.Path, change.NewPath!, records);
                    break;
            }
        }

        return records.Close(published: lastCutPublished is null ? cutPublished : cut =>
        {
            lastCutPublished(cut);
            cutPublished?.Invoke(cut);
        });
    }

    /// <summary>Compares the whole tree with what the peer has and journals the differences, closed by a cut: after
    /// a queue overflow, and at start (the first rescan of an empty peer is a full sync).</summary>
    public int Rescan()
    {
        var records = new Batch(_journal, Generation, Touched);
        Rescan(records);
        return records.Close();
    }

    /// <summary>A difference resync: forgets what it believed the peer has, takes <paramref name="peerHas"/> (what the
    /// replica holds, by block hashes) instead, and journals what differs from the tree now, closed by a cut even when
    /// nothing differs (the replica then stands at a position this journal continues). Returns the first record's
    /// sequence and the cut's. Entries under excluded paths are left out: what is not replicated is the peer's own.</summary>
    /// <exception cref="ArgumentException">A file of the manifest is hashed in blocks of another size.</exception>
    public (ulong First, ulong Cut) Resync(IEnumerable<ManifestEntry> peerHas) => TryResync(peerHas, null, 0, out _)!.Value;

    /// <summary>A difference resync of only <paramref name="dirty"/> (each path with everything under it; null: the
    /// whole tree), for a replica at <paramref name="applied"/>: <paramref name="peerHas"/> holds what the replica
    /// has there, and what this journal believes the peer has elsewhere stays. When paths changed after
    /// <paramref name="applied"/> that <paramref name="dirty"/> does not cover (changes journaled since the dirty set
    /// was read), nothing is done, null is returned and <paramref name="missing"/> names them: the replica is asked
    /// for them too. Null with nothing missing: the dirty set no longer says; compare the whole tree.</summary>
    public (ulong First, ulong Cut)? TryResync(IEnumerable<ManifestEntry> peerHas, IReadOnlyCollection<string>? dirty, ulong applied, out IReadOnlyList<string> missing)
    {
        missing = [];
        ArgumentNullException.ThrowIfNull(peerHas);
        HashSet<string>? compared = null;
        List<(string Path, HashSet<uint> Blocks)> written = [];
        if (dirty is not null)
        {
            compared = dirty.ToHashSet(StringComparer.Ordinal);
            var now = DirtySince(Generation, applied);
            if (now is null)
            {
                // The dirty set no longer says (too many paths meanwhile): the caller compares the whole tree.
                return null;
            }

            missing = [.. now.Where(p => !JournalPath.IsAtOrUnderAny(p, compared))];
            // Files only written since: their written blocks are sent, unless a compared path covers them. One this
            // journal holds no index of, or that is no longer a regular file, is compared instead.
            written = WrittenSince(applied).Where(w => !JournalPath.IsAtOrUnderAny(w.Path, compared)).ToList();
            missing = [.. missing, .. written.Where(w => !_files.ContainsKey(w.Path) || !IsRegularFile(Full(w.Path))).Select(w => w.Path)];
            if (missing.Count > 0)
            {
                return null;
            }

            // What this journal believes the peer has under the compared paths gives way to what it says it has.
            foreach (var path in Known.Concat(_attributes.Keys).Where(p => JournalPath.IsAtOrUnderAny(p, compared)).ToList())
            {
                _files.Remove(path);
                _directories.Remove(path);
                _symlinks.Remove(path);
                _attributes.Remove(path);
            }
        }
        else
        {
            _files.Clear();
            _directories.Clear();
            _symlinks.Clear();
            _attributes.Clear();
        }

        foreach (var entry in peerHas.Where(e => !_excluded(e.Path)))
        {
            if (entry.Attributes is { } attributes)
            {
                _attributes[entry.Path] = attributes;
            }

            switch (entry.Kind)
            {
                case ManifestEntryKind.File when entry.Blocks!.BlockSize == _blockSize:
                    _files[entry.Path] = entry.Blocks;
                    break;
                case ManifestEntryKind.File:
                    throw new ArgumentException($"{entry.Path}: hashed in blocks of {entry.Blocks.BlockSize} bytes, this journal's are {_blockSize}", nameof(peerHas));
                case ManifestEntryKind.Directory:
                    _directories.Add(entry.Path);
                    break;
                case ManifestEntryKind.Symlink:
                    _symlinks[entry.Path] = entry.Target!;
                    break;
            }
        }

        var first = _journal.LastSequence + 1;
        var records = new Batch(_journal, Generation, Touched);
        if (compared is null)
        {
            Rescan(records);
        }
        else
        {
            // Every compared path walked, then one pass for what the peer has there and the tree no longer does (a
            // pass per directory would read every path the peer has once for each).
            var present = new HashSet<string>(StringComparer.Ordinal);
            foreach (var path in compared.Order(StringComparer.Ordinal))
            {
                RescanPath(path, records, present);
            }

            foreach (var path in Known.Where(p => JournalPath.IsAtOrUnderAny(p, compared) && !present.Contains(p)).ToList())
            {
                Replace(path, records);
            }

            foreach (var (path, blocks) in written)
            {
                ResendBlocks(path, blocks, records);
            }
        }

        records.Close(always: true);
        // From the cut on, the replica holds the tree as compared: the dirty set says what it lacks after that.
        if (_coveredFrom == ulong.MaxValue)
        {
            ForgetDirty();
        }

        _coveredFrom = _journal.LastSequence;
        return (first, _journal.LastSequence);
    }

    /// <summary>A dirty path of a difference resync: what it holds now (and under it, for a directory) against what
    /// the peer has there; what it found goes into <paramref name="present"/>.</summary>
    private void RescanPath(string path, Batch records, HashSet<string> present)
    {
        if (_excluded(path))
        {
            return;
        }

        var full = Full(path);
        var directory = new DirectoryInfo(full);
        var isDirectory = directory.Exists && directory.LinkTarget is null;
        if (isDirectory || new FileInfo(full).Exists)
        {
            RefreshPresent(path, records, present);
        }

        if (isDirectory)
        {
            RefreshTree(full, records, present);
        }
    }

    /// <summary>What a path holds now and its attributes, against what the peer has; noted as present.</summary>
    private void RefreshPresent(string path, Batch records, HashSet<string> present)
    {
        present.Add(path);
        Refresh(path, records);
        RefreshAttributes(path, records);
    }

    /// <summary><see cref="RefreshPresent"/> for everything under the directory <paramref name="full"/>.</summary>
    private void RefreshTree(string full, Batch records, HashSet<string> present)
    {
        foreach (var (path, _) in FileTree.Walk(Scope.Root, full, _excluded, Scope.Leads))
        {
            RefreshPresent(path, records, present);
        }
    }

    /// <summary>The peer acknowledged every record through <paramref name="sequence"/>: those leave the dirty set.</summary>
    public void Acknowledged(ulong sequence)
    {
        if (sequence <= _acknowledgedThrough)
        {
            return;
        }

        _acknowledgedThrough = sequence;
        while (_touchOrder.TryPeek(out var oldest) && oldest.Sequence <= sequence)
        {
            _touchOrder.Dequeue();
            if (_touched.TryGetValue(oldest.Path, out var last) && last == oldest.Sequence)
            {
                _touched.Remove(oldest.Path);
                ForgetWritten(oldest.Path);
            }
        }
    }

    /// <summary>What may differ between the tree and a replica at <paramref name="applied"/> of
    /// <paramref name="generation"/>: the paths changed after it (a directory with everything under it), or null when
    /// the dirty set cannot say (another generation, a position before what it covers, a journaler that has not
    /// compared since it started, or too many paths): then the whole tree is compared.</summary>
    public IReadOnlyList<string>? DirtySince(DataGeneration generation, ulong applied)
    {
        if (generation != Generation || applied < _coveredFrom || applied < _acknowledgedThrough || applied > _journal.LastSequence)
        {
            return null;
        }

        var paths = _touched.Where(t => t.Value > applied && !_writtenBlocks.ContainsKey(t.Key)).Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        return [.. paths.Where(p => !JournalPath.IsAtOrUnderAny(JournalPath.Parent(p), paths)).Order(StringComparer.Ordinal)];
    }

    /// <summary>The files changed after <paramref name="applied"/> by write records only, with the blocks those wrote
    /// (the caller has checked <see cref="DirtySince"/> says: the dirty set covers <paramref name="applied"/>). They
    /// are not in <see cref="DirtySince"/>'s paths: a resync sends the blocks instead of comparing.</summary>
    public IReadOnlyList<(string Path, HashSet<uint> Blocks)> WrittenSince(ulong applied) =>
        [.. _writtenBlocks.Where(w => _touched.TryGetValue(w.Key, out var last) && last > applied).Select(w => (w.Key, w.Value)).OrderBy(w => w.Key, StringComparer.Ordinal)];

    private static bool IsRegularFile(string full)
    {
        var info = new FileInfo(full);
        return info.Exists && info.LinkTarget is null;
    }

    /// <summary>A file only written while the peer was away: the blocks those writes changed go again as they are now
    /// (and every block past what this journal last recorded of its length, which a change not read yet may have
    /// added), with the length it has now; the index takes their hashes. A file gone meanwhile is left to its
    /// deletion, which the capture has queued.</summary>
    private void ResendBlocks(string path, HashSet<uint> blocks, Batch records)
    {
        var peer = _files[path];
        FileStream stream;
        try
        {
            stream = new FileStream(Full(path), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return;
        }

        using (stream)
        {
            var length = stream.Length;
            var count = (int)((length + _blockSize - 1) / _blockSize);
            var hashes = new UInt128[count];
            for (var i = 0; i < Math.Min(count, peer.Hashes.Count); i++)
            {
                hashes[i] = peer.Hashes[i];
            }

            var send = new SortedSet<uint>(blocks.Where(b => b < count));
            for (var i = length == peer.Length ? count : Math.Max(0, peer.Hashes.Count - 1); i < count; i++)
            {
                send.Add((uint)i);
            }

            var buffer = new byte[_blockSize];
            var changed = new List<BlockChange>();
            foreach (var number in send)
            {
                // Within the length taken above, even if the file grew since (what it grew by is read with its change).
                var read = RandomAccess.Read(stream.SafeFileHandle, buffer.AsSpan(0, (int)Math.Min(_blockSize, length - ((long)number * _blockSize))), (long)number * _blockSize);
                var bytes = buffer.AsSpan(0, read);
                hashes[number] = System.IO.Hashing.XxHash128.HashToUInt128(bytes);
                changed.Add(new BlockChange(number, bytes.ToArray()));
                if (FillsRecord(changed))
                {
                    records.Add(new WriteRecord(0, Generation, path, (ulong)length, _blockSize, changed));
                    changed = [];
                }
            }

            var modified = ModifiedOf(Full(path));
            records.Add(new WriteRecord(0, Generation, path, (ulong)length, _blockSize, changed, modified));
            PeerGetsTime(path, modified);
            _files[path] = BlockIndex.FromHashes(length, _blockSize, hashes);
        }
    }

    private void Touched(JournalRecord record)
    {
        if (record is CutRecord || _coveredFrom == ulong.MaxValue)
        {
            return;
        }

        var firstTouch = !_touched.ContainsKey(record.Path);
        Touch(record.Path, record.Sequence);
        if (record is WriteRecord write && (firstTouch || _writtenBlocks.ContainsKey(record.Path)) && _writtenBlockCount + write.Blocks.Count <= MaxWrittenBlocks)
        {
            if (!_writtenBlocks.TryGetValue(record.Path, out var blocks))
            {
                _writtenBlocks[record.Path] = blocks = [];
            }

            foreach (var block in write.Blocks)
            {
                _writtenBlockCount += blocks.Add(block.Index) ? 1 : 0;
            }
        }
        else if (record is AttributesRecord attributes && (firstTouch || _writtenBlocks.ContainsKey(record.Path)) && _files.ContainsKey(record.Path)
            && _attributes.TryGetValue(record.Path, out var known) && (known.Mode, known.Owner, known.Group) == (attributes.Mode, attributes.Owner, attributes.Group))
        {
            // A file's time alone (a touch, the same bytes written again): the resend of its written blocks, none at
            // all for a touch alone, carries the time the file has then; comparing it by hashes would read it whole
            // on both nodes. (Called before the record's values are taken as the peer's: known is the old.)
            _writtenBlocks.TryAdd(record.Path, []);
        }
        else
        {
            // Created, renamed, deleted, its mode, owner or group changed (or past the blocks kept): compared by hashes.
            ForgetWritten(record.Path);
        }

        if (record is RenameRecord rename)
        {
            Touch(rename.NewPath, record.Sequence);
            ForgetWritten(rename.NewPath);
        }

        if (_touched.Count > MaxDirtyPaths)
        {
            // Too many to compare path by path: the next resync compares the whole tree.
            _coveredFrom = ulong.MaxValue;
            ForgetDirty();
        }
        else if (_touchOrder.Count > (2 * _touched.Count) + 1024)
        {
            // A path changed over and over queues once per record: keep only its last.
            var latest = _touched.OrderBy(t => t.Value).Select(t => (t.Value, t.Key)).ToList();
            _touchOrder.Clear();
            latest.ForEach(_touchOrder.Enqueue);
        }
    }

    private void ForgetWritten(string path)
    {
        if (_writtenBlocks.Remove(path, out var blocks))
        {
            _writtenBlockCount -= blocks.Count;
        }
    }

    private void ForgetDirty()
    {
        _touched.Clear();
        _touchOrder.Clear();
        _writtenBlocks.Clear();
        _writtenBlockCount = 0;
    }

    private void Touch(string path, ulong sequence)
    {
        _touched[path] = sequence;
        _touchOrder.Enqueue((sequence, path));
    }

    /// <summary>At most this much file content in one write record (unless one block is larger): a large change is
    /// several records of one cut, each encoded, written, read and sent as a unit (256 blocks of 64 KiB made records
    /// of 16 MiB, each allocated whole at every step). 16 KiB under a mebibyte leaves room for the record's header,
    /// its path and its blocks' headers, and the frame's, so that a record, its message and its frame each fit the
    /// pool's 1 MiB buffers (<see cref="ReplicationBuffers"/>): at 1 MiB of content they took 2 MiB ones, twice the memory.</summary>
    public const int RecordContentBytes = (1 << 20) - (16 << 10);

    /// <summary>Whether <paramref name="changed"/> is a whole write record's worth: <see cref="JournalCodec.MaxBlocksPerRecord"/>
    /// blocks, or as many as fit in <see cref="RecordContentBytes"/> (at least one).</summary>
    private bool FillsRecord(List<BlockChange> changed) =>
        changed.Count == JournalCodec.MaxBlocksPerRecord || (changed.Count + 1) * (long)_blockSize > RecordContentBytes;

    /// <summary>The block size files are compared and shipped in.</summary>
    public int BlockSize => _blockSize;

    /// <summary>The records of one batch, appended to the journal as they are made (numbered in order), so that a
    /// large file's blocks are never all held in memory; closed by a cut and one fdatasync.</summary>
    private sealed class Batch(JournalFile journal, DataGeneration generation, Action<JournalRecord> touched)
    {
        private int _sinceCut;

        public int Count { get; private set; }

        /// <summary>Bytes of file content in the records since the last cut.</summary>
        public long ContentSinceCut { get; private set; }

        public void Add(JournalRecord record)
        {
            var numbered = record with { Sequence = journal.LastSequence + 1 };
            journal.Append(numbered);
            touched(numbered);
            Count++;
            _sinceCut++;
            ContentSinceCut += record is WriteRecord write ? write.ContentBytes : 0;
        }

        /// <summary>Closes what was added since the last cut with a cut; its sequence. The cut is readable
        /// (<see cref="JournalFile.Publish"/>) and <paramref name="published"/> told before the sync, so that it goes to
        /// the peer meanwhile; with <paramref name="published"/> the sync runs behind (<see cref="JournalFile.SyncBehind"/>),
        /// without, the cut is durable when this returns.</summary>
        public ulong Cut(Action<ulong>? published = null)
        {
            Add(new CutRecord(0, generation));
            if (published is not null)
            {
                journal.Publish();
                published(journal.LastSequence);
                journal.SyncBehind();
            }
            else
            {
                journal.Sync();
            }

            _sinceCut = 0;
            ContentSinceCut = 0;
            return journal.LastSequence;
        }

        public int Close(bool always = false, Action<ulong>? published = null)
        {
            if (_sinceCut > 0 || (Count == 0 && always))
            {
                Cut(published);
            }

            return Count;
        }
    }

    /// <summary>How much file content one batch's cut holds at most before another begins (<see cref="Journal"/>):
    /// 16 MiB is an eighth of a second of a 1 Gbit/s link, and a few dozen of a disk's sync.</summary>
    public long CutBytes { get; init; } = DefaultCutBytes;

    public const long DefaultCutBytes = 16L << 20;

    private string Full(string relative) => Path.Combine(Scope.Root, relative);

    /// <summary>What the path holds now, against what the peer has.</summary>
    /// <param name="timeAlone">Whether a file whose content the peer has already gets its time alone (an attributes
    /// record) when only that differs; false for a write event, whose writer's close says when the time is whole.</param>
    private void Refresh(string path, Batch records, bool timeAlone = true)
    {
        var full = Full(path);
        FileSystemInfo info = new FileInfo(full);
        if (!info.Exists)
        {
            info = new DirectoryInfo(full);
            if (!info.Exists)
            {
                // Gone again: its deletion is a change of its own.
                return;
            }
        }

        EnsureParents(path, records);
        if (info.LinkTarget is { } target)
        {
            if (!_symlinks.TryGetValue(path, out var known) || known != target)
            {
                Replace(path, records);
                records.Add(new SymlinkRecord(0, Generation, path, target));
                _symlinks[path] = target;
            }

            return;
        }

        if (info is DirectoryInfo)
        {
            if (!_directories.Contains(path))
            {
                Replace(path, records);
                var (uid, gid) = OwnerOf(full);
                records.Add(new DirectoryRecord(0, Generation, path, (uint)info.UnixFileMode, uid, gid));
                _directories.Add(path);
                PeerGets(path, (uint)info.UnixFileMode, uid, gid);
            }

            return;
        }

        FileStream stream;
        try
        {
            stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return;
        }

        using (stream)
        {
            if (!_files.TryGetValue(path, out var peer))
            {
                Replace(path, records);
                var status = EntryAttributes.Of(full);
                var (uid, gid) = status is { } known ? (known.Owner, known.Group) : (JournalRecord.NoOwner, JournalRecord.NoOwner);
                records.Add(new CreateRecord(0, Generation, path, (uint)info.UnixFileMode, uid, gid, status?.Modified));
                PeerGets(path, (uint)info.UnixFileMode, uid, gid, status?.Modified ?? 0);
                peer = BlockIndex.Empty(_blockSize);
            }

            // One read: each block is hashed and, when the peer's differs, shipped from the same bytes; a record
            // holds at most MaxBlocksPerRecord blocks and about RecordContentBytes, so a large change is several records of one cut, each
            // appended as it fills (the length they carry is the one at the start; the last carries the end's).
            var lengthAtStart = stream.Length;
            long? recordedLength = null;
            var changed = new List<BlockChange>();
            // The changed blocks of the record being filled, copied into one pooled buffer (a record is appended to
            // the journal, encoded and written, before the next one reuses it): an array per block was a megabyte of
            // garbage per record, a collection per record with apphbd's small gen0 budget.
            var content = ReplicationBuffers.Pool.Rent(Math.Max(RecordContentBytes, _blockSize));
            var used = 0;
            try
            {
                var index = BlockIndex.Of(stream, _blockSize, (number, bytes, hash) =>
                {
                    if (number < peer.Hashes.Count && peer.Hashes[(int)number] == hash)
                    {
                        return;
                    }

                    bytes.CopyTo(content.AsSpan(used));
                    changed.Add(new BlockChange(number, content.AsMemory(used, bytes.Length)));
                    used += bytes.Length;
                    if (FillsRecord(changed))
                    {
                        // A file that grows while it is read has blocks past the length it had at the start: the record's
                        // length covers its blocks (one beyond its length is malformed: the journal would be found
                        // damaged and started again, and the replica resynced whole; the resync benchmark's bulk copy did
                        // that in every run until 2026-12-02).
                        var covered = Math.Max(lengthAtStart, ((long)number * _blockSize) + bytes.Length);
                        records.Add(new WriteRecord(0, Generation, path, (ulong)covered, _blockSize, changed));
                        recordedLength = covered;
                        changed = [];
                        used = 0;
                    }
                });
                // The time after the read: a write after it changes both again, and its own change follows.
                var modified = ModifiedOf(full);
                // A last record also when the parts already appended ended with the file: it carries the time.
                if (changed.Count > 0 || index.Length != (recordedLength ?? peer.Length) || (recordedLength is not null && modified is not null))
                {
                    records.Add(new WriteRecord(0, Generation, path, (ulong)index.Length, _blockSize, changed, modified));
                    PeerGetsTime(path, modified);
                }
                else if (timeAlone)
                {
                    // Written with what it held already (or only its time set): the time alone goes.
                    SendTime(path, modified, records);
                }

                _files[path] = index;
            }
            finally
            {
                ReplicationBuffers.Pool.Return(content);
            }
        }
    }

    /// <summary>The modification time of the file just read (null when it is no longer a file there: what replaced
    /// it is a change of its own); of anything there, unless <paramref name="fileOnly"/>.</summary>
    private static long? ModifiedOf(string full, bool fileOnly = true)
    {
        try
        {
            return FileStatus.Of(full) is { } status && (status.IsRegularFile || !fileOnly) ? status.ModifiedNanoseconds : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>A file the peer has, whose time alone may differ from the peer's.</summary>
    private void TimeAlone(string path, Batch records)
    {
        if (_files.ContainsKey(path))
        {
            SendTime(path, ModifiedOf(Full(path)), records);
        }
    }

    private void SendTime(string path, long? modified, Batch records)
    {
        if (modified is { } time && _attributes.TryGetValue(path, out var known) && known.Modified != time)
        {
            RecordAttributes(path, known with { Modified = time }, records);
        }
    }

    /// <summary>The peer's copy of <paramref name="path"/> takes <paramref name="modified"/> with the record that
    /// carries it.</summary>
    private void PeerGetsTime(string path, long? modified)
    {
        if (modified is { } time && _attributes.TryGetValue(path, out var known))
        {
            _attributes[path] = known with { Modified = time };
        }
    }

    /// <summary>Records every directory above <paramref name="path"/> the peer does not have, outermost first: the
    /// replica would make them anyway to hold the path, and a directory the journaler does not know it has is one
    /// it would never delete (the churn test found such directories left on the replica after the source removed
    /// them: a tree made and removed before its creation was read, with a rename into it in between).</summary>
    private void EnsureParents(string path, Batch records)
    {
        var missing = new Stack<string>();
        // Not above a member: those directories are not replicated (the replica makes them to hold it).
        for (var parent = JournalPath.Parent(path); parent.Length > 0 && !Scope.Leads(parent) && !_directories.Contains(parent); parent = JournalPath.Parent(parent))
        {
            missing.Push(parent);
        }

        while (missing.Count > 0)
        {
            var directory = missing.Pop();
            Replace(directory, records);
            var mode = Directory.Exists(Full(directory)) ? (uint)new DirectoryInfo(Full(directory)).UnixFileMode : 0b111_101_101u;
            var (uid, gid) = OwnerOf(Full(directory));
            records.Add(new DirectoryRecord(0, Generation, directory, mode, uid, gid));
            _directories.Add(directory);
            PeerGets(directory, mode, uid, gid);
        }
    }

    /// <summary>Who owns the path (for the replica's copy); unknown when it is gone meanwhile.</summary>
    private static (uint Uid, uint Gid) OwnerOf(string full) =>
        EntryAttributes.Of(full) is { } attributes ? (attributes.Owner, attributes.Group) : (JournalRecord.NoOwner, JournalRecord.NoOwner);

    private void PeerGets(string path, uint mode, uint uid, uint gid, long modified = 0)
    {
        if (uid == JournalRecord.NoOwner)
        {
            _attributes.Remove(path);
        }
        else
        {
            _attributes[path] = new EntryAttributes(mode & 0xfff, uid, gid, modified);
        }
    }

    /// <summary>Whether the peer has something (a file, a symlink, a directory) at <paramref name="path"/>.</summary>
    private bool PeerHas(string path) => _files.ContainsKey(path) || _symlinks.ContainsKey(path) || _directories.Contains(path);

    /// <summary>Every path the peer has.</summary>
    private IEnumerable<string> Known => _files.Keys.Concat(_symlinks.Keys).Concat(_directories);

    /// <summary>Something the peer has at <paramref name="path"/> is replaced by another kind of thing (or, for a
    /// directory, by a rename over it, which rename(2) allows only when it is empty): it goes first, with all under it.</summary>
    private void Replace(string path, Batch records)
    {
        if (PeerHas(path))
        {
            Forget(path, records);
        }
    }

    private void Attributes(string path, Batch records)
    {
        if (!_files.ContainsKey(path) && !_directories.Contains(path))
        {
            Refresh(path, records);
            return;
        }

        // Null: gone again.
        if (EntryAttributes.Of(Full(path)) is { } now)
        {
            RecordAttributes(path, now, records);
        }
    }

    private void RecordAttributes(string path, EntryAttributes now, Batch records)
    {
        // A directory's time is not compared (the replica sets its own with every entry), but a touch of one is
        // still carried.
        var modified = now.Modified != 0 ? now.Modified : ModifiedOf(Full(path), fileOnly: false) ?? 0;
        records.Add(new AttributesRecord(0, Generation, path, now.Mode, now.Owner, now.Group, modified));
        PeerGets(path, now.Mode, now.Owner, now.Group, now.Modified);
    }

    /// <summary>After a rescan's <see cref="Refresh"/>: the mode, owner or group of a file or directory the peer
    /// has, or a file's time, when they differ from what it has (or are not known, as after an overflow).</summary>
    private void RefreshAttributes(string path, Batch records)
    {
        if ((!_files.ContainsKey(path) && !_directories.Contains(path))
            || EntryAttributes.Of(Full(path)) is not { } now
            || (_attributes.TryGetValue(path, out var known) && known == now))
        {
            return;
        }

        RecordAttributes(path, now, records);
    }

    /// <summary>Deletes, deepest first, everything the peer has at or under <paramref name="path"/>.</summary>
    private void Forget(string path, Batch records)
    {
        if (!_directories.Contains(path))
        {
            // Nothing is under what the peer has as a file or a symlink: no pass over every path it has.
            if (PeerHas(path))
            {
                records.Add(new DeleteRecord(0, Generation, path));
                _attributes.Remove(path);
                _files.Remove(path);
                _symlinks.Remove(path);
            }

            return;
        }

        var gone = Known
            .Where(p => JournalPath.IsAtOrUnder(p, path))
            .OrderByDescending(p => p.Count(c => c == '/')).ThenByDescending(p => p, StringComparer.Ordinal)
            .ToList();
        foreach (var p in gone)
        {
            records.Add(new DeleteRecord(0, Generation, p));
            _attributes.Remove(p);
            _files.Remove(p);
            _symlinks.Remove(p);
            _directories.Remove(p);
        }
    }

    private void Rename(string from, string to, Batch records)
    {
        if (!PeerHas(from))
        {
            // The peer never had it (made and renamed within one batch): what is at the new path is new to it.
            Refresh(to, records);
            if (_directories.Contains(to))
            {
                RescanUnder(to, records);
            }

            return;
        }

        var isDirectory = _directories.Contains(from);
        Replace(to, records);
        EnsureParents(to, records);
        records.Add(new RenameRecord(0, Generation, from, to));
        JournalPath.MoveUnder(_files, from, to);
        JournalPath.MoveUnder(_symlinks, from, to);
        JournalPath.MoveUnder(_attributes, from, to);
        foreach (var directory in _directories.Where(d => JournalPath.IsAtOrUnder(d, from)).ToList())
        {
            _directories.Remove(directory);
            _directories.Add(to + directory[from.Length..]);
        }

        if (!isDirectory)
        {
            // A write queued before the rename named the old path and found nothing there: what the file holds now
            // is compared under its new one. (A directory's contents are scanned again by the capture.)
            Refresh(to, records);
        }
    }

    private void Rescan(Batch records) => RescanUnder(string.Empty, records);

    private void RescanUnder(string relative, Batch records)
    {
        var present = new HashSet<string>(StringComparer.Ordinal);
        RefreshTree(relative.Length == 0 ? Scope.Root : Full(relative), records, present);

        var prefix = relative.Length == 0 ? string.Empty : relative + "/";
        var missing = Known
            .Where(p => p.StartsWith(prefix, StringComparison.Ordinal) && !present.Contains(p))
            .ToList();
        foreach (var path in missing)
        {
            // Replace: a path whose parent was forgotten before it is gone already.
            Replace(path, records);
        }
    }
}
