using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.CrashWorker;
using AppHb.Replication.Journal;

// AppHb.Replication.CrashWorker journal PATH: journals until it is killed (below).
// AppHb.Replication.CrashWorker ROOT FILES [STATE [received]]: applies version after version of FILES files to the
// replica at ROOT, until it is killed. Without STATE, record by record, printing "FILE VERSION" after each apply has
// returned; with STATE (the cut applier's directory), each round of versions as one cut, printing "cut VERSION" after
// it; with "received" too, as the receiver does: each cut made durable in the receive log first, "cut VERSION"
// printed then (its acknowledgement), and applied after.
if (args is ["journal", var journalPath, .. var console] && console.Length <= 1)
{
    // AppHb.Replication.CrashWorker journal PATH [CONSOLE]: the active's journal, batch after batch of numbered
    // records (JournalRecords), each batch synced, "synced N" printed after the sync of the batch that ends at record
    // N; with CONSOLE (the rig's serial port) written there as the rig's "RIG UPTIME SYNCED N" line instead, at once:
    // a shell reading the lines fell thousands of records behind under emulation.
    using var journal = JournalFile.Open(journalPath);
    using var report = console.Length == 1 ? new StreamWriter(new FileStream(console[0], FileMode.Open, FileAccess.Write)) { AutoFlush = true } : Console.Out;
    for (var next = journal.LastSequence + 1; ; )
    {
        var batch = JournalRecords.BatchAt(next);
        for (var i = 0; i < batch; i++, next++)
        {
            journal.Append(JournalRecords.Numbered(next));
        }

        journal.Sync();
        report.WriteLine(console.Length == 1
            ? $"RIG {File.ReadAllText("/proc/uptime").Split(' ')[0]} SYNCED {next - 1}"
            : $"synced {next - 1}");
        report.Flush();
    }
}

if (args.Length is < 2 or > 4 || !int.TryParse(args[1], out var files) || files < 1 || (args.Length == 4 && args[3] != "received"))
{
    Console.Error.WriteLine("usage: AppHb.Replication.CrashWorker ROOT FILES [STATE [received]] | journal PATH [CONSOLE]");
    return 2;
}

var versions = Enumerable.Range(0, files).Select(f => new FileVersions(f, 4096)).ToArray();
ulong sequence = 0;
if (args.Length >= 3)
{
    var cuts = new CutApplier(args[0], args[2]);
    using var log = args.Length == 4 ? cuts.OpenReceiveLog() : null;
    for (var round = 1; ; round++)
    {
        // The writes numbered first, then their cut (Append's argument is made before the Select runs: the cut had
        // the round's lowest number, which the applier does not check, and a receive log's reader would).
        var records = versions.Select(v => (JournalRecord)v.Next(++sequence)).ToList();
        records.Add(new CutRecord(++sequence, new DataGeneration(1, 1)));
        if (log is not null)
        {
            records.ForEach(log.Add);
            if (log.Commit() != sequence)
            {
                Console.Error.WriteLine($"cut {round} does not fit the receive log");
                return 1;
            }

            Console.Out.WriteLine($"cut {round}");
            Console.Out.Flush();
            cuts.ApplyCut(records);
            log.Applied(sequence);
            continue;
        }

        cuts.ApplyCut(records);
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
