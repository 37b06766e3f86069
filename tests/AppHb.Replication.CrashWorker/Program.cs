using AppHb.Replication.Apply;
using AppHb.Replication.CrashWorker;

// apphb-replication-crash-worker ROOT FILES: applies version after version of FILES files to the replica at ROOT,
// printing "FILE VERSION" after each apply has returned, until it is killed.
if (args.Length != 2 || !int.TryParse(args[1], out var files) || files < 1)
{
    Console.Error.WriteLine("usage: AppHb.Replication.CrashWorker ROOT FILES");
    return 2;
}

var applier = new ReplicaApplier(args[0]);
var versions = Enumerable.Range(0, files).Select(f => new FileVersions(f, 4096)).ToArray();
ulong sequence = 0;
while (true)
{
    foreach (var (file, index) in versions.Select((v, i) => (v, i)))
    {
        applier.Apply(file.Next(++sequence));
        Console.Out.WriteLine($"{index} {file.Version}");
        Console.Out.Flush();
    }
}
