using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.Journal;
using AppHb.Replication.Transfer;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The replication connection over real TCP on loopback: the hello and its refusals, the journal carried in
/// order and applied a cut at a time, acknowledgements (the barrier's ground), a restart resuming where the replica
/// stands, and frames altered on the way refused with nothing of their cut applied.</summary>
public sealed class TransferTests : IDisposable
{
    private const ushort Active = 1;
    private const ushort Standby = 2;
    private static readonly DataGeneration Generation = new(3, Active);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string Replica => Path.Combine(_directory.Path, "replica");

    private string State => Path.Combine(_directory.Path, "state");

    [Fact]
    public async Task The_journal_reaches_the_replica_in_order_and_each_cut_is_acknowledged_once_durable()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Append(journal, 1);
        using var sender = new ReplicationSender(journal);
        var applier = new CutApplier(Replica, State);
        await using var pair = await Connected.OpenAsync(_key, _key);
        using var stop = new CancellationTokenSource();
        var sending = sender.RunAsync(pair.Sender, stop.Token);
        var receiving = new ReplicationReceiver(applier).RunAsync(pair.Receiver, stop.Token);

        await sender.WaitAppliedAsync(journal.LastSequence, CancellationToken.None).WaitAsync(Patience);
        Assert.Equal("round 1 of a", File.ReadAllText(Path.Combine(Replica, "dir", "a")));
        Assert.False(File.Exists(Path.Combine(Replica, "b")));
        Assert.Equal("round 1 of b", File.ReadAllText(Path.Combine(Replica, "dir", "b-renamed")));

        // Records appended while the connection runs go out as the journaler says so.
        Append(journal, 2);
        sender.Appended();
        await sender.WaitAppliedAsync(journal.LastSequence, CancellationToken.None).WaitAsync(Patience);
        Assert.Equal("round 2 of a", File.ReadAllText(Path.Combine(Replica, "dir", "a")));
        // The position is recorded right after the acknowledgement (which waits only for the cut to be durable and
        // visible), before the receiver reads on.
        Assert.True(await Polling.UntilAsync(() => Task.FromResult(applier.LastApplied == (Generation, journal.LastSequence)), Patience, CancellationToken.None),
            $"the replica's position stayed at {applier.LastApplied}");

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => sending);
        await Assert.ThrowsAnyAsync<Exception>(() => receiving);
    }

    [Fact]
    public async Task A_cut_reaching_an_idle_standby_is_in_its_receive_log_when_acknowledged_though_no_barrier_asked()
    {
        // An application's commit is usually followed by its barrier: a standby with nothing else to do logs the cut
        // as it arrives (one fdatasync) and acknowledges it, so the barrier finds it acknowledged. Nothing here asks
        // for an acknowledgement (no barrier: the acknowledged count is polled).
        using var journal = JournalFile.Open(_directory.File("journal"));
        Append(journal, 1);
        using var sender = new ReplicationSender(journal);
        await using var pair = await Connected.OpenAsync(_key, _key);
        using var stop = new CancellationTokenSource();
        var sending = sender.RunAsync(pair.Sender, stop.Token);
        var receiving = new ReplicationReceiver(new CutApplier(Replica, State)).RunAsync(pair.Receiver, stop.Token);
        await sender.WaitAppliedAsync(journal.LastSequence, CancellationToken.None).WaitAsync(Patience);

        Append(journal, 2);
        sender.Appended();
        Assert.True(await Polling.UntilAsync(() => Task.FromResult(sender.Acknowledged == journal.LastSequence), Patience, CancellationToken.None),
            $"acknowledged up to {sender.Acknowledged} of {journal.LastSequence}");

        // Read beside the receiver (which keeps the log open): the cut and its write record, at the log's start
        // (everything logged before was applied).
        byte[] log;
        using (var file = new FileStream(ReceiveLog.PathIn(State), FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            log = new byte[file.Length];
            file.ReadExactly(log);
        }

        var logged = new List<JournalRecord>();
        for (var at = 0; JournalCodec.Decode(log.AsSpan(at)) is { Status: JournalDecodeStatus.Decoded } decoded; at += decoded.Consumed)
        {
            logged.Add(decoded.Record!);
        }

        Assert.Equal([journal.LastSequence - 1, journal.LastSequence], logged.Select(r => r.Sequence));
        Assert.IsType<CutRecord>(logged[^1]);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => sending);
        await Assert.ThrowsAnyAsync<Exception>(() => receiving);
    }

    [Fact]
    public async Task An_acknowledgement_that_arrives_before_its_send_has_returned_keeps_the_connection()
    {
        // Each send returns 200 ms after its bytes went: the replica applies and acknowledges the cut meanwhile. The
        // sender once counted a record sent only after its send returned, took that acknowledgement for one of a
        // record never sent, and dropped the connection (a barrier then waited for the reconnect).
        using var journal = JournalFile.Open(_directory.File("journal"));
        Append(journal, 1);
        using var sender = new ReplicationSender(journal);
        await using var pair = await Connected.OpenAsync(_key, _key, sendsReturnLate: TimeSpan.FromMilliseconds(200));
        using var stop = new CancellationTokenSource();
        var sending = sender.RunAsync(pair.Sender, stop.Token);
        var receiving = new ReplicationReceiver(new CutApplier(Replica, State)).RunAsync(pair.Receiver, stop.Token);

        async Task AcknowledgedAsync()
        {
            var acknowledged = sender.WaitAppliedAsync(journal.LastSequence, CancellationToken.None);
            var first = await Task.WhenAny(acknowledged, sending, receiving).WaitAsync(Patience);
            if (first != acknowledged)
            {
                // The connection ended first: its exception says why.
                await first;
                Assert.Fail("the connection ended before the acknowledgement");
            }
        }

        await AcknowledgedAsync();
        Append(journal, 2);
        sender.Appended();
        await AcknowledgedAsync();
        Assert.Equal("round 2 of a", File.ReadAllText(Path.Combine(Replica, "dir", "a")));
        // Still the first connection: neither end has ended it.
        Assert.False(sending.IsCompleted, sending.Exception?.ToString());
        Assert.False(receiving.IsCompleted, receiving.Exception?.ToString());
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => sending);
        await Assert.ThrowsAnyAsync<Exception>(() => receiving);
    }

    [Fact]
    public async Task A_receiver_that_restarts_resumes_after_its_last_applied_cut_and_is_sent_only_the_rest()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Append(journal, 1);
        using (var first = new ReplicationSender(journal))
        {
            await RunUntilAcknowledged(first, new CutApplier(Replica, State), journal.LastSequence);
        }

        var before = journal.LastSequence;
        Append(journal, 2);
        var applier = new CutApplier(Replica, State);
        Assert.Equal(before, applier.LastApplied.Sequence);
        var counting = new CountingJournal(journal);
        using var resumed = new ReplicationSender(counting);
        await RunUntilAcknowledged(resumed, applier, journal.LastSequence);
        Assert.Equal("round 2 of a", File.ReadAllText(Path.Combine(Replica, "dir", "a")));
        Assert.Equal((int)(journal.LastSequence - before), counting.Sent);
    }

    [Fact]
    public async Task Compressed_payloads_arrive_as_they_were_sent_and_only_what_shrinks_is_compressed()
    {
        await using var pair = await Connected.OpenAsync(_key, _key);
        pair.Sender.CompressOutgoing = true;
        var text = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 5000).Select(i => $"line {i}: the same words again\n")));
        var noise = RandomNumberGenerator.GetBytes(100_000);
        // A payload's first byte is its message kind, which the channel reads: a random 9 (Compressed) failed 1 run in 256.
        noise[0] = 0;
        var small = System.Text.Encoding.UTF8.GetBytes(new string('a', 200));
        foreach (var payload in new[] { text, noise, small })
        {
            var before = (pair.Sender.PayloadBytesSent, pair.Sender.CompressedBytesSent);
            await pair.Sender.SendAsync(payload, CancellationToken.None);
            Assert.Equal(payload, await pair.Receiver.ReceiveAsync(CancellationToken.None).WaitAsync(Patience));
            var sent = pair.Sender.CompressedBytesSent - before.CompressedBytesSent;
            Assert.Equal(payload.Length, pair.Sender.PayloadBytesSent - before.PayloadBytesSent);
            if (payload == text)
            {
                // Repetitive text (numbered lines): about a seventh of it went.
                Assert.True(sent * 4 < payload.Length, $"{sent} bytes sent for {payload.Length}");
            }
            else
            {
                // Random bytes do not shrink, and a short payload is not worth a deflater: both sent as they are.
                Assert.Equal(payload.Length, sent);
            }
        }
    }

    [Fact]
    public async Task With_compression_on_the_replica_is_the_same_and_text_goes_in_a_fraction_of_its_bytes()
    {
        var source = Directory.CreateDirectory(_directory.File("source")).FullName;
        var replica = Directory.CreateDirectory(_directory.File("replica")).FullName;
        for (var i = 0; i < 20; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(source, $"log{i}.txt"),
                string.Concat(Enumerable.Range(0, 2000).Select(n => $"{n:D6} INFO request served in {n % 17} ms\n")), TestContext.Current.CancellationToken);
        }

        await File.WriteAllBytesAsync(Path.Combine(source, "random.bin"), RandomNumberGenerator.GetBytes(300_000), TestContext.Current.CancellationToken);
        using var journal = JournalFile.Open(_directory.File("journal"));
        await using var pump = AppHb.Replication.Capture.CapturePump.Start(source, new AppHb.Replication.Capture.Journaler(source, journal, new DataGeneration(3, 1)), journal);
        pump.Sender.Compress = true;
        await using var replication = Replicating.Start(pump, replica, _key, _directory.File("state"));
        await pump.BarrierAsync(Patience, TestContext.Current.CancellationToken, visible: true);
        // And a change after the first resync: journaled records are compressed too.
        await File.AppendAllTextAsync(Path.Combine(source, "log0.txt"), string.Concat(Enumerable.Repeat("WARN the same line again\n", 3000)), TestContext.Current.CancellationToken);
        await pump.BarrierAsync(Patience, TestContext.Current.CancellationToken, visible: true);

        var (_, differences) = TreeSnapshot.Compare(source, replica);
        Assert.True(differences is null, differences);
        // ~1.1 MB of text, 0.3 MB of random bytes: the text shrinks, the random bytes go as they are.
        Assert.True(pump.Sender.BytesSent > 1_300_000, $"{pump.Sender.BytesSent} bytes sent");
        Assert.True(pump.Sender.BytesSentCompressed < 300_000 + (pump.Sender.BytesSent - 300_000) / 3,
            $"{pump.Sender.BytesSentCompressed} bytes on the wire for {pump.Sender.BytesSent}");
    }

    [Theory]
    [InlineData("more than a message may hold", 0xffffffffu, "x", false)]
    [InlineData("does not inflate to the 100 bytes it announces", 100u, "only fifty bytes of text, fewer than announced...", false)]
    [InlineData("does not inflate to the 10 bytes it announces", 10u, "many more bytes than the ten it announces", false)]
    [InlineData("a compressed message inside a compressed message", 6u, "\u0009abcde", false)]
    [InlineData("deflate stream is damaged", 100u, null, true)]
    [InlineData("too short to hold its length", 0u, null, false)]
    public async Task A_compressed_message_that_lies_about_itself_ends_the_connection_naming_what_was_wrong(string expected, uint announced, string? content, bool damaged)
    {
        // Authenticated (the peer has the key): only the compressed message's own rules can refuse it.
        await using var pair = await Connected.OpenAsync(_key, _key);
        byte[] payload;
        if (content is null && !damaged)
        {
            payload = [(byte)ReplicationMessageKind.Compressed, 0, 0];
        }
        else
        {
            var deflated = new MemoryStream();
            using (var deflate = new System.IO.Compression.DeflateStream(deflated, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            {
                deflate.Write(System.Text.Encoding.UTF8.GetBytes(content ?? new string('z', 100)));
            }

            var stream = deflated.ToArray();
            if (damaged)
            {
                stream = [0xff, 0xff, 0xff, .. stream[3..]];
            }

            payload = new byte[5 + stream.Length];
            payload[0] = (byte)ReplicationMessageKind.Compressed;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(1), announced);
            stream.CopyTo(payload, 5);
        }

        await pair.Sender.SendAsync(payload, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() => pair.Receiver.ReceiveAsync(CancellationToken.None)).WaitAsync(Patience);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_speaking_another_version_is_refused_naming_both_versions()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        using var server = await listener.AcceptTcpClientAsync();
        var other = new ReplicationHello(7, ReplicationSide.Receiver, Standby, RandomNumberGenerator.GetBytes(ChannelKeys.SaltSize)).Encode();
        await server.GetStream().WriteAsync(other);

        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() =>
            ReplicationChannel.OpenAsync(client.GetStream(), _key, ReplicationSide.Sender, Active, Standby, CancellationToken.None));
        Assert.Contains("version 7, this node version 5", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n..........................", "not an AppHb replication peer")]
    [InlineData(null, "the peer is the sender and so is this node")]
    public async Task A_hello_that_is_not_a_receivers_is_refused_with_what_it_was(string? text, string expected)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        using var server = await listener.AcceptTcpClientAsync();
        var bytes = text is null
            ? ReplicationHello.Create(ReplicationSide.Sender, Standby).Encode()
            : System.Text.Encoding.ASCII.GetBytes(text)[..ReplicationHello.Size];
        await server.GetStream().WriteAsync(bytes);

        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() =>
            ReplicationChannel.OpenAsync(client.GetStream(), _key, ReplicationSide.Sender, Active, Standby, CancellationToken.None));
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_with_another_cluster_key_fails_at_its_first_frame_and_nothing_is_applied()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Append(journal, 1);
        using var sender = new ReplicationSender(journal);
        await using var pair = await Connected.OpenAsync(_key, RandomNumberGenerator.GetBytes(32));
        var receiving = new ReplicationReceiver(new CutApplier(Replica, State)).RunAsync(pair.Receiver, CancellationToken.None);

        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() => sender.RunAsync(pair.Sender, CancellationToken.None)).WaitAsync(Patience);
        Assert.Contains("frame 1 fails authentication", refused.Message, StringComparison.Ordinal);
        pair.Close();
        // The socket closed under the receiver: an aborted read, or a read begun after the close (the read-ahead's).
        var ended = await Assert.ThrowsAnyAsync<Exception>(() => receiving).WaitAsync(Patience);
        Assert.True(ended is IOException or ObjectDisposedException, $"the receiver ended with {ended}");
        Assert.False(Directory.Exists(Replica) && Directory.EnumerateFileSystemEntries(Replica).Any());
    }

    [Fact]
    public async Task A_frame_altered_on_the_way_ends_the_connection_and_its_cut_is_never_applied()
    {
        using var journal = JournalFile.Open(_directory.File("journal"));
        Append(journal, 1);
        Append(journal, 2);
        var firstCut = journal.ReadAfter(0).First(r => r is CutRecord).Sequence;
        // Flip a bit in the ciphertext of the frame after the first cut's: the first cut arrives whole, the second never.
        await using var pair = await Connected.OpenAsync(_key, _key, alterFrame: (int)firstCut + 2);
        using var sender = new ReplicationSender(journal);
        var applier = new CutApplier(Replica, State);
        var sending = sender.RunAsync(pair.Sender, CancellationToken.None);

        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() => new ReplicationReceiver(applier).RunAsync(pair.Receiver, CancellationToken.None)).WaitAsync(Patience);
        Assert.Contains($"frame {firstCut + 2} fails authentication", refused.Message, StringComparison.Ordinal);
        Assert.Equal(firstCut, applier.LastApplied.Sequence);
        Assert.Equal("round 1 of a", File.ReadAllText(Path.Combine(Replica, "dir", "a")));
        pair.Close();
        await Assert.ThrowsAnyAsync<IOException>(() => sending).WaitAsync(Patience);
    }

    [Fact]
    public async Task A_record_out_of_sequence_is_refused_naming_both_sequences()
    {
        await using var pair = await Connected.OpenAsync(_key, _key);
        var receiving = new ReplicationReceiver(new CutApplier(Replica, State)).RunAsync(pair.Receiver, CancellationToken.None);
        ReplicationMessage.ReadResume(await pair.Sender.ReceiveAsync(CancellationToken.None));
        await pair.Sender.SendAsync(ReplicationMessage.Record(new CreateRecord(1, Generation, "a", 0b110_000_000)), CancellationToken.None);
        await pair.Sender.SendAsync(ReplicationMessage.Record(new CutRecord(3, Generation)), CancellationToken.None);

        var refused = await Assert.ThrowsAsync<ReplicationRefusedException>(() => receiving).WaitAsync(Patience);
        Assert.Contains("record 3 where record 2 was due", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(Replica, "a")));
    }

    private static async Task RunUntilAcknowledged(ReplicationSender sender, CutApplier applier, ulong sequence)
    {
        await using var pair = await Connected.OpenAsync(TestKey, TestKey);
        using var stop = new CancellationTokenSource();
        var sending = sender.RunAsync(pair.Sender, stop.Token);
        var receiving = new ReplicationReceiver(applier).RunAsync(pair.Receiver, stop.Token);
        await sender.WaitAppliedAsync(sequence, CancellationToken.None).WaitAsync(Patience);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => sending);
        await Assert.ThrowsAnyAsync<Exception>(() => receiving);
    }

    private static readonly byte[] TestKey = RandomNumberGenerator.GetBytes(32);

    /// <summary>A round of changes: a directory, two files written, one renamed, then a cut.</summary>
    private static void Append(JournalFile journal, int round)
    {
        var next = journal.LastSequence;
        JournalRecord[] records = round == 1
            ?
            [
                new DirectoryRecord(++next, Generation, "dir", 0b111_101_101),
                new CreateRecord(++next, Generation, "dir/a", 0b110_100_100),
                new WriteRecord(++next, Generation, "dir/a", 12, 4096, [new BlockChange(0, "round 1 of a"u8.ToArray())]),
                new CreateRecord(++next, Generation, "b", 0b110_100_100),
                new WriteRecord(++next, Generation, "b", 12, 4096, [new BlockChange(0, "round 1 of b"u8.ToArray())]),
                new RenameRecord(++next, Generation, "b", "dir/b-renamed"),
                new CutRecord(++next, Generation),
            ]
            :
            [
                new WriteRecord(++next, Generation, "dir/a", 12, 4096, [new BlockChange(0, "round 2 of a"u8.ToArray())]),
                new CutRecord(++next, Generation),
            ];
        foreach (var record in records)
        {
            journal.Append(record);
        }

        journal.Sync();
    }

    /// <summary>A journal reader that counts the records handed to the sender.</summary>
    private sealed class CountingJournal(IJournalReader inner) : IJournalReader
    {
        public int Sent { get; private set; }

        public ulong LastSequence => inner.LastSequence;

        public long BytesAfter(ulong sequence) => inner.BytesAfter(sequence);

        public IEnumerable<JournalRecord> ReadAfter(ulong sequence)
        {
            foreach (var record in inner.ReadAfter(sequence))
            {
                Sent++;
                yield return record;
            }
        }
    }
}
