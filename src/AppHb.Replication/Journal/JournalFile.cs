using System.Buffers;
using System.Runtime.ExceptionServices;

namespace AppHb.Replication.Journal;

/// <summary>The ordered journal on disk: records appended in sequence order, made durable in batches by
/// <see cref="Sync"/> (fdatasync), read back from any sequence. Opening it recovers from a crash: a record torn by
/// the crash (or damaged) at the end is cut off, so that what follows starts on a record boundary, and
/// <see cref="Recovery"/> says what was dropped. Small batches are written over zeros written ahead of them
/// (<see cref="ZerosAhead"/>): their fdatasync then changes no metadata and waits for no commit of the filesystem's
/// journal, which carries every other change made on that filesystem (the application's files, the barrier's).
/// Not thread-safe: one journaler writes it.</summary>
public sealed class JournalFile : IJournalReader, IDisposable
{
    private FileStream _stream;
    /// <summary>Where each record starts, in sequence order: the sender reads from the first one it needs instead of
    /// parsing the journal from its start at every batch. Shared with the sender's thread, under <see cref="_gate"/>.</summary>
    private readonly List<(ulong Sequence, long Offset)> _offsets;
    private readonly Lock _gate = new();

    private JournalFile(string path, FileStream stream, ulong lastSequence, long records, string? recovery, List<(ulong, long)> offsets)
    {
        Path = path;
        _stream = stream;
        LastSequence = lastSequence;
        Records = records;
        Recovery = recovery;
        _offsets = offsets;
    }

    public string Path { get; }

    /// <summary>The sequence number of the last record, or 0 when it holds none.</summary>
    public ulong LastSequence { get; private set; }

    public long Records { get; private set; }

    /// <summary>What opening it had to cut off (a torn or damaged end), or null when it was whole: the changes of that
    /// end are not in the journal, so the engine marks what it may have touched dirty for a resync.</summary>
    public string? Recovery { get; }

    /// <summary>Opens (or creates) the journal at <paramref name="path"/> and recovers its end, reading it a record at
    /// a time (it is bounded by its size limit, <see cref="Restart"/>, and never held in memory whole).</summary>
    public static JournalFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.None);
        try
        {
            long end = 0;
            long records = 0;
            ulong last = 0;
            string? recovery = null;
            var offsets = new List<(ulong, long)>();
            using (var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, ReadBuffer))
            {
                foreach (var (at, decoded) in Scan(reader))
                {
                    if (decoded.Status != JournalDecodeStatus.Decoded)
                    {
                        // Zeros to the end are what was written ahead of the records, not a torn one.
                        if (!ZerosFrom(path, at))
                        {
                            recovery = $"{path}: {reader.Length - at} bytes at offset {at} after record {last} cut off ({decoded.Status.ToString().ToLowerInvariant()}: {decoded.Problem})";
                        }

                        break;
                    }

                    last = decoded.Record!.Sequence;
                    offsets.Add((last, at));
                    records++;
                    end = at + decoded.Consumed;
                }
            }

            if (end < stream.Length)
            {
                stream.SetLength(end);
                stream.Flush(flushToDisk: true);
            }

            stream.Seek(0, SeekOrigin.End);
            return new JournalFile(path, stream, last, records, recovery, offsets) { _published = last, _publishedLength = end, _end = end, _allocated = end, _syncedEnd = end };
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds only zeros from <paramref name="offset"/> to its end.</summary>
    private static bool ZerosFrom(string path, long offset)
    {
        using var file = File.OpenHandle(path);
        var buffer = new byte[ReadBuffer];
        for (var at = offset; ;)
        {
            var read = RandomAccess.Read(file, buffer, at);
            if (read == 0)
            {
                return true;
            }

            if (buffer.AsSpan(0, read).ContainsAnyExcept((byte)0))
            {
                return false;
            }

            at += read;
        }
    }

    /// <summary>How many zero bytes a small batch's <see cref="Sync"/> writes ahead of the journal's end when it has
    /// none left, so that the next small batches overwrite them (a barrier's records are a few hundred bytes: a
    /// syncs with metadata every thousand barriers or so). A large batch (a bulk copy's) is appended as before:
    /// zeros written ahead of it would be written to the disk twice.</summary>
    public const int ZerosAhead = 1 << 20;

    /// <summary>A batch of at most this many bytes is small (<see cref="ZerosAhead"/>).</summary>
    private const int SmallBatch = 64 << 10;

    /// <summary>Where the records appended end (the file goes on with zeros up to <see cref="_allocated"/>); under
    /// the lock.</summary>
    private long _end;

    /// <summary>How far the file is written (records, then zeros).</summary>
    private long _allocated;

    /// <summary>Where the records ended at the last <see cref="Sync"/> or <see cref="SyncBehind"/>: what a batch adds
    /// is measured from here.</summary>
    private long _syncedEnd;

    /// <summary>How much a reader of the journal reads from the disk at a time.</summary>
    private const int ReadBuffer = 1 << 16;

    /// <summary>The records of <paramref name="stream"/> from its position on, each with its offset, read one at a
    /// time; at the first one that is not whole and intact (the end torn, or damaged), that one's decoding, then
    /// nothing more. What opening the journal and the sender's reads both walk.</summary>
    private static IEnumerable<(long Offset, JournalDecoding Decoded)> Scan(FileStream stream)
    {
        var header = new byte[4];
        while (true)
        {
            var (at, rented, read) = ReadRecordBytes(stream, header, headroom: 0);
            if (read == 0)
            {
                yield break;
            }

            JournalDecoding decoded;
            try
            {
                // Decoding copies what the record keeps out of the pooled bytes.
                decoded = JournalCodec.Decode(BytesRead(header, rented, headroom: 0, read));
            }
            finally
            {
                if (rented is not null)
                {
                    ReplicationBuffers.Pool.Return(rented);
                }
            }

            yield return (at, decoded);
            if (decoded.Status != JournalDecodeStatus.Decoded)
            {
                yield break;
            }
        }
    }

    /// <summary>Reads the record at <paramref name="stream"/>'s position: its offset, and its bytes (<c>Read</c> of
    /// them) after <paramref name="headroom"/> bytes of a buffer rented from replication's pool, which the caller
    /// gives back; or no buffer when the length field alone says there is no record to read (the stream ends inside
    /// it, or the length is impossible), its bytes then in <paramref name="header"/>. <c>Read</c> is 0 at the end.</summary>
    private static (long At, byte[]? Rented, int Read) ReadRecordBytes(FileStream stream, byte[] header, int headroom)
    {
        var at = stream.Position;
        var read = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        // The length alone: an impossible one is refused before anything is allocated for it.
        if (read < header.Length || JournalCodec.DecodeHeader(header).Status != JournalDecodeStatus.Incomplete)
        {
            return (at, null, read);
        }

        var length = header.Length + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header);
        var rented = ReplicationBuffers.Pool.Rent(headroom + length);
        header.CopyTo(rented, headroom);
        read += stream.ReadAtLeast(rented.AsSpan(headroom + header.Length, length - header.Length), length - header.Length, throwOnEndOfStream: false);
        return (at, rented, read);
    }

    /// <summary>The bytes <see cref="ReadRecordBytes"/> read.</summary>
    private static ReadOnlySpan<byte> BytesRead(byte[] header, byte[]? rented, int headroom, int read) =>
        rented is null ? header.AsSpan(0, read) : rented.AsSpan(headroom, read);

    /// <summary>Appends a record (buffered until <see cref="Sync"/>). Sequence numbers only grow.</summary>
    public void Append(JournalRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Sequence <= LastSequence)
        {
            throw new ArgumentException($"record {record.Sequence} after record {LastSequence}: a journal's sequence numbers only grow", nameof(record));
        }

        var offset = _stream.Position;
        JournalCodec.WriteTo(record, _stream);
        lock (_gate)
        {
            _offsets.Add((record.Sequence, offset));
            LastSequence = record.Sequence;
            _end = _stream.Position;
        }

        Records++;
    }

    /// <summary>Makes every appended record readable (<see cref="ReadAfter"/>, <see cref="ReadEncodedAfter"/>)
    /// before it is durable: the peer may receive a batch while <see cref="Sync"/> writes it here. A record the peer
    /// holds and this journal lost to a power cut is harmless: the peer is ahead of a journal that starts again
    /// (a resync, as after every start), or it takes over.</summary>
    public void Publish()
    {
        var end = _stream.Position;
        lock (_gate)
        {
            _published = LastSequence;
            _publishedLength = end;
        }
    }

    /// <summary>Makes every appended record durable (fdatasync), and readable (<see cref="Publish"/>) if it was not.</summary>
    /// <exception cref="IOException">The write or the sync failed (named with the file), this one or one
    /// <see cref="SyncBehind"/> started.</exception>
    public void Sync()
    {
        var end = EndBatch();
        WaitSynced();
        AppHb.Linux.Files.DurableFile.SyncData(_stream);
        Published(end);
    }

    /// <summary>As <see cref="Sync"/>, but the fdatasync runs on another thread and this returns at once, the records
    /// readable: the journaler goes on reading the kernel's notifications meanwhile (a barrier's among them, which
    /// waited for this sync before; the barrier promises the peer's durability, not this journal's, and every start
    /// compares the whole tree with the peer's anyway). Syncs asked while one runs or waits are made by one more after
    /// it, at most one every <see cref="SyncBehindInterval"/>. A batch larger than a small one is synced at once, as
    /// by <see cref="Sync"/>.</summary>
    /// <exception cref="IOException">A sync started before failed (named with the file): the journal's disk refuses.</exception>
    public void SyncBehind()
    {
        if (_stream.Position - _syncedEnd > SmallBatch)
        {
            // A large batch (a bulk copy's) is synced here, as before: its sync paces the journaling to the disk,
            // which the peer's apply shares; behind, the bulk copy fell from 93-94 % of the link to 88 %.
            Sync();
            return;
        }

        var end = EndBatch();
        Published(end);
        lock (_syncGate)
        {
            if (_syncQueued)
            {
                // Not started yet: it syncs this batch too.
                return;
            }

            _syncQueued = true;
            // Taken here, on the writer's thread: the stream's members are its alone.
            var handle = _stream.SafeFileHandle;
            _syncing = SyncAfterAsync(_syncing, handle);
        }
    }

    /// <summary>At most one sync behind every <see cref="SyncBehindInterval"/>: batches made meanwhile wait for the
    /// next one together. A writer's every commit (a barrier's loop, 1,000 writes/s) would otherwise sync this journal
    /// as often, each fdatasync on the disk beside the peer's and the application's.</summary>
    public static readonly TimeSpan SyncBehindInterval = TimeSpan.FromMilliseconds(10);

    private long _lastSyncBehind;

    private async Task SyncAfterAsync(Task previous, Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        await previous.ConfigureAwait(false);
        var wait = SyncBehindInterval - System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref _lastSyncBehind));
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait).ConfigureAwait(false);
        }
        else
        {
            await Task.Yield();
        }

        lock (_syncGate)
        {
            _syncQueued = false;
        }

        Volatile.Write(ref _lastSyncBehind, System.Diagnostics.Stopwatch.GetTimestamp());
        try
        {
            // The stream is written without a buffer: nothing to flush, and its writer goes on meanwhile.
            AppHb.Linux.Files.DurableFile.SyncData(handle, Path);
        }
        catch (IOException e)
        {
            _syncFailure ??= ExceptionDispatchInfo.Capture(e);
        }
    }

    /// <summary>Waits for the syncs <see cref="SyncBehind"/> started (before the file is replaced or closed), and
    /// throws what one of them failed with.</summary>
    private void WaitSynced()
    {
        Task syncing;
        lock (_syncGate)
        {
            syncing = _syncing;
        }

        syncing.Wait();
        _syncFailure?.Throw();
    }

    /// <summary>The end of the batch appended since the last sync, with zeros written ahead of it when it is small
    /// (made durable with it: the next small batches change no metadata); throws a failure of a sync behind.</summary>
    private long EndBatch()
    {
        _syncFailure?.Throw();
        var end = _stream.Position;
        if (end > _allocated && end - _syncedEnd <= SmallBatch)
        {
            RandomAccess.Write(_stream.SafeFileHandle, new byte[ZerosAhead], end);
            _allocated = end + ZerosAhead;
        }

        _allocated = Math.Max(_allocated, end);
        _syncedEnd = end;
        return end;
    }

    private void Published(long end)
    {
        lock (_gate)
        {
            _published = LastSequence;
            _publishedLength = end;
        }
    }

    private readonly Lock _syncGate = new();
    /// <summary>The syncs started by <see cref="SyncBehind"/>, one after the other; under <see cref="_syncGate"/>.</summary>
    private Task _syncing = Task.CompletedTask;
    /// <summary>Whether a sync is started and not yet running (it will sync whatever is written by then).</summary>
    private bool _syncQueued;
    private volatile ExceptionDispatchInfo? _syncFailure;

    /// <summary>How many bytes of the file <see cref="Publish"/> or <see cref="Sync"/> made readable: a record starting
    /// before this is whole.</summary>
    private long _publishedLength;

    /// <summary>The last record made readable by <see cref="Publish"/> or <see cref="Sync"/> (all of them, for a
    /// journal just opened).</summary>
    private ulong _published;

    /// <summary>The published records after <paramref name="sequence"/>, in order, from the first one after it (an offset
    /// index, not a parse from the start), read a record at a time as they are enumerated (a resync's gigabyte never
    /// sits in memory): a reader of its own, so the sender may enumerate while the journaler appends; records appended
    /// but not yet published are left for a later call.</summary>
    /// <exception cref="InvalidDataException">A record in the journal is damaged (while enumerating).</exception>
    public IEnumerable<JournalRecord> ReadAfter(ulong sequence) =>
        OpenAfter(sequence) is var (reader, published, publishedLength) ? Read(reader, sequence, published, publishedLength) : [];

    /// <summary>A reader at the first record after <paramref name="sequence"/>, with what was published then; null when
    /// the journal holds none after it.</summary>
    private (FileStream Reader, ulong Durable, long DurableLength)? OpenAfter(ulong sequence)
    {
        lock (_gate)
        {
            var low = FirstAfter(sequence);
            if (low == _offsets.Count)
            {
                return null;
            }

            // Opened under the lock: a restart of the journal (Restart) replaces the file, and the offset is this one's.
            var reader = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, ReadBuffer);
            reader.Position = _offsets[low].Offset;
            return (reader, _published, _publishedLength);
        }
    }

    private IEnumerable<JournalRecord> Read(FileStream reader, ulong after, ulong published, long publishedLength)
    {
        using (reader)
        {
            foreach (var (at, decoded) in Scan(reader))
            {
                if (!Readable(at, decoded.Status, decoded.Problem, decoded.Record?.Sequence ?? 0, published, publishedLength))
                {
                    yield break;
                }

                if (decoded.Record!.Sequence > after)
                {
                    yield return decoded.Record;
                }
            }
        }
    }

    /// <summary>Whether a reader goes on with the record at <paramref name="at"/> (whole, intact and published), or
    /// stops there (being appended, or not yet published: read at a later call).</summary>
    /// <exception cref="InvalidDataException">The record is damaged.</exception>
    private bool Readable(long at, JournalDecodeStatus status, string? problem, ulong sequence, ulong published, long publishedLength)
    {
        // Past what was published: being appended, or zeros written ahead.
        if (at >= publishedLength)
        {
            return false;
        }

        if (status == JournalDecodeStatus.Incomplete)
        {
            // It starts in what was published whole: its length field was damaged into one past the end.
            throw new InvalidDataException($"{Path}: at offset {at}: corrupt record (its length runs past the {publishedLength} bytes written)");
        }

        if (status != JournalDecodeStatus.Decoded)
        {
            throw new InvalidDataException($"{Path}: at offset {at}: {status.ToString().ToLowerInvariant()} record ({problem})");
        }

        // Appended, not yet published: sent once its batch is whole, never before.
        return sequence <= published;
    }

    /// <summary><see cref="ReadAfter"/>'s records as the bytes the journal holds (each checked by its CRC-32 and its
    /// sequence and kind read, never decoded and encoded again), after <paramref name="headroom"/> bytes of an array
    /// rented from replication's pool that the caller owns (<see cref="EncodedRecord"/>): a megabyte record decoded into
    /// block arrays and encoded again cost the sender three copies of it.</summary>
    /// <exception cref="InvalidDataException">A record in the journal is damaged (while enumerating).</exception>
    public IEnumerable<EncodedRecord> ReadEncodedAfter(ulong sequence, int headroom)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(headroom);
        return OpenAfter(sequence) is var (reader, published, publishedLength) ? ReadEncoded(reader, sequence, published, publishedLength, headroom) : [];
    }

    private IEnumerable<EncodedRecord> ReadEncoded(FileStream reader, ulong after, ulong published, long publishedLength, int headroom)
    {
        using (reader)
        {
            var header = new byte[4];
            while (true)
            {
                var (at, rented, read) = ReadRecordBytes(reader, header, headroom);
                if (read == 0)
                {
                    yield break;
                }

                var decoded = JournalCodec.DecodeHeader(BytesRead(header, rented, headroom, read));

                bool readable;
                try
                {
                    readable = Readable(at, decoded.Status, decoded.Problem, decoded.Sequence, published, publishedLength);
                }
                catch (InvalidDataException) when (rented is not null)
                {
                    ReplicationBuffers.Pool.Return(rented);
                    throw;
                }

                if (!readable || decoded.Sequence <= after)
                {
                    if (rented is not null)
                    {
                        ReplicationBuffers.Pool.Return(rented);
                    }

                    if (!readable)
                    {
                        yield break;
                    }

                    continue;
                }

                yield return new EncodedRecord(decoded.Sequence, decoded.Kind, rented!, headroom + decoded.Consumed);
            }
        }
    }

    /// <summary>How many bytes the journal's records take (the file may go on with zeros written ahead).</summary>
    public long Length
    {
        get
        {
            lock (_gate)
            {
                return _end;
            }
        }
    }

    /// <summary>Starts the journal again with only the records after <paramref name="keepAfter"/> (at least the last
    /// one, so its sequence numbers go on where they were): for its size limit. A replica before the first record kept
    /// can no longer be continued from it and is resynced. Call it between batches (everything appended is synced).</summary>
    /// <returns>The first record kept (0 when the journal holds none).</returns>
    public ulong Restart(ulong keepAfter = ulong.MaxValue)
    {
        lock (_gate)
        {
            if (_offsets.Count == 0)
            {
                return 0;
            }

            var from = Math.Min(FirstAfter(keepAfter), _offsets.Count - 1);
            var (first, offset) = _offsets[from];
            // No sync behind may run on the stream replaced below.
            WaitSynced();
            _stream.Flush(flushToDisk: true);
            // Streamed, never held whole: what a connected peer still needs may be large. A reader already open goes
            // on reading the replaced file; the next one opens this.
            var end = _stream.Position;
            AppHb.Linux.Files.DurableFile.Replace(Path, file =>
            {
                // The records only, not the zeros written ahead of them.
                using var records = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, ReadBuffer);
                records.Position = offset;
                var buffer = new byte[ReadBuffer];
                for (var left = end - offset; left > 0;)
                {
                    var read = records.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (read == 0)
                    {
                        throw new IOException($"{Path}: it ends at {records.Position}, before its records' end {end}");
                    }

                    file.Write(buffer, 0, read);
                    left -= read;
                }
            });
            _stream.Dispose();
            _stream = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.None);
            _stream.Seek(0, SeekOrigin.End);
            var keptOffsets = _offsets.Skip(from).Select(o => (o.Sequence, o.Offset - offset)).ToList();
            _offsets.Clear();
            _offsets.AddRange(keptOffsets);
            Records = keptOffsets.Count;
            _published = LastSequence;
            _publishedLength = _stream.Length;
            _end = _stream.Length;
            _allocated = _stream.Length;
            _syncedEnd = _stream.Length;
            return first;
        }
    }

    /// <summary>How many bytes the records after <paramref name="sequence"/> take.</summary>
    public long BytesAfter(ulong sequence)
    {
        lock (_gate)
        {
            var index = FirstAfter(sequence);
            return index == _offsets.Count ? 0 : _end - _offsets[index].Offset;
        }
    }

    /// <summary>The index in the offsets of the first record after <paramref name="sequence"/> (their count when
    /// none is); under the lock.</summary>
    private int FirstAfter(ulong sequence)
    {
        var low = 0;
        var high = _offsets.Count;
        while (low < high)
        {
            var middle = (low + high) / 2;
            if (_offsets[middle].Sequence <= sequence)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }

    public void Dispose()
    {
        try
        {
            WaitSynced();
        }
        catch (IOException)
        {
            // Thrown to the journaler already, or at its next batch, which will not come.
        }

        _stream.Dispose();
    }
}
