using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.CrashWorker;
using AppHb.Replication.Journal;

// AppHb.Replication.CrashWorker journal PATH: journals until it is killed (below); recover ROOT STATE: recovers.
// AppHb.Replication.CrashWorker ROOT FILES [STATE [received [CONSOLE]]]: applies version after version of FILES files
// to the replica at ROOT, until it is killed. Without STATE, record by record, printing "FILE VERSION" after each apply
// has returned; with STATE (the cut applier's directory), each round of versions as one cut, printing "cut VERSION"
// after it; with "received" too, as the receiver does: each cut made durable in the receive log and acknowledged
// ("cut VERSION" printed) on one thread, applied behind it on another (up to Backlog cuts behind, as the receiver's
// applying task runs behind its receiving task under load); with CONSOLE (the rig's serial port) the acknowledgement
// is written there as the rig's "RIG UPTIME ACK VERSION" line, at once.
if (args is ["recover", var recoverRoot, var recoverState, .. var recoverConsole] && recoverConsole.Length <= 1)
{
    // AppHb.Replication.CrashWorker recover ROOT STATE [CONSOLE]: what a restarted receiver does first (after a power
    // cut, at the next boot: the staging areas and the state are where the crash left them, on their filesystems),
    // printed as "recovered WHAT" (CONSOLE: the rig's "RIG UPTIME RECOVERED WHAT" line).
    using var said = new WorkerReport(recoverConsole.FirstOrDefault());
    said.Say("recovered", "RECOVERED", new CutApplier(recoverRoot, recoverState).Recover() ?? WorkerReport.NothingRecovered);
    return 0;
}

if (args is ["journal", var journalPath, .. var console] && console.Length <= 1)
{
    // AppHb.Replication.CrashWorker journal PATH [CONSOLE]: the active's journal, batch after batch of numbered
    // records (JournalRecords), each batch synced, "synced N" printed after the sync of the batch that ends at record
    // N; with CONSOLE (the rig's serial port) written there as the rig's "RIG UPTIME SYNCED N" line instead.
    using var journal = JournalFile.Open(journalPath);
    using var report = new WorkerReport(console.FirstOrDefault());
    for (var next = journal.LastSequence + 1; ; )
    {
        var batch = JournalRecords.BatchAt(next);
        for (var i = 0; i < batch; i++, next++)
        {
            journal.Append(JournalRecords.Numbered(next));
        }

        journal.Sync();
        report.Say("synced", "SYNCED", $"{next - 1}");
    }
}

if (args.Length is < 2 or > 5 || !int.TryParse(args[1], out var files) || files < 1 || (args.Length >= 4 && args[3] != "received"))
{
    Console.Error.WriteLine("usage: AppHb.Replication.CrashWorker ROOT FILES [STATE [received [CONSOLE]]] | journal PATH [CONSOLE] | recover ROOT STATE [CONSOLE]");
    return 2;
}

var versions = Enumerable.Range(0, files).Select(f => new FileVersions(f, 4096)).ToArray();
ulong sequence = 0;
if (args.Length >= 3)
{
    var cuts = new CutApplier(args[0], args[2]);
    if (args.Length >= 4)
    {
        return Received(cuts, versions, args.Length == 5 ? args[4] : null);
    }

    for (var round = 1; ; round++)
    {
        cuts.ApplyCut(NextCut(versions, ref sequence));
        Console.Out.WriteLine($"cut {round}");
        Console.Out.Flush();
    }
}

var applier = new ReplicaApplier(args[0]);
while (true)
{
    foreach (var (file, index) in versions.Select((v, i) => (v, i)))
    {
        applier.Apply(file.Next(++sequence));
        Console.Out.WriteLine($"{index} {file.Version}");
        Console.Out.Flush();
    }
}

// The receiver's two tasks as two threads: this one logs each cut (fdatasync) and acknowledges it, the other applies
// the cuts in order behind it. Logged cuts wait for their apply as they do under load, so a power cut mostly finds
// acknowledged cuts that only the receive log holds.
static int Received(CutApplier cuts, FileVersions[] versions, string? console)
{
    const int Backlog = 8;
    using var log = cuts.OpenReceiveLog();
    ulong applied = 0;
    using var logged = new System.Collections.Concurrent.BlockingCollection<List<JournalRecord>>(Backlog);
    var applying = new Thread(() =>
    {
        // An apply that fails ends the process (unhandled): the host sees the worker end, never a silent stop.
        foreach (var cut in logged.GetConsumingEnumerable())
        {
            cuts.ApplyCut(cut);
            log.Applied(cut[^1].Sequence);
            Volatile.Write(ref applied, cut[^1].Sequence);
        }
    }) { IsBackground = true, Name = "apply" };
    applying.Start();
    using var report = new WorkerReport(console);
    ulong sequence = 0;
    for (var round = 1; ; round++)
    {
        var records = NextCut(versions, ref sequence);
        records.ForEach(log.Add);
        ulong? committed;
        while (true)
        {
            // No room left behind the cuts waiting for their apply (large versions): once they are applied the log
            // starts over. Whether they were is read before the commit is tried: read after it, the last apply could
            // land between the two and a cut that fits would be taken for one that does not.
            var caughtUp = Volatile.Read(ref applied) >= sequence - (ulong)records.Count;
            if ((committed = log.Commit()) is not null || caughtUp)
            {
                break;
            }

            Thread.Sleep(1);
        }

        if (committed != sequence)
        {
            Console.Error.WriteLine($"cut {round} does not fit the receive log");
            return 1;
        }

        report.Say("cut", "ACK", $"{round}");
        logged.Add(records);
    }
}

// One round: the next version of every file, then the cut that closes it, numbered on from sequence.
static List<JournalRecord> NextCut(FileVersions[] versions, ref ulong sequence)
{
    // The writes numbered first, then their cut: the applier does not check that order, a receive log's reader does.
    var records = new List<JournalRecord>(versions.Length + 1);
    foreach (var version in versions)
    {
        records.Add(version.Next(++sequence));
    }

    records.Add(new CutRecord(++sequence, new DataGeneration(1, 1)));
    return records;
}
