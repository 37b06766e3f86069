namespace AppHb.Replication.CrashWorker;

/// <summary>Where the worker says what it did: standard output, as "WORD WHAT" lines for a process on the host that
/// kills it; or the appliance rig's serial console, as the rig's "RIG UPTIME KIND WHAT" lines, written there by the
/// worker itself (a shell reading the lines fell thousands behind under emulation, and a power cut must find every
/// line said before it).</summary>
public sealed class WorkerReport(string? console) : IDisposable
{
    /// <summary>What the recover mode says when the crash left nothing to finish (a test counts the others).</summary>
    public const string NothingRecovered = "nothing to do";

    private readonly TextWriter _writer = console is null
        ? Console.Out
        : new StreamWriter(new FileStream(console, FileMode.Open, FileAccess.Write)) { AutoFlush = true };

    /// <param name="word">The word of a line on standard output.</param>
    /// <param name="kind">The kind of a rig line on the console.</param>
    public void Say(string word, string kind, string what)
    {
        _writer.WriteLine(console is null ? $"{word} {what}" : $"RIG {File.ReadAllText("/proc/uptime").Split(' ')[0]} {kind} {what}");
        _writer.Flush();
    }

    public void Dispose()
    {
        if (console is not null)
        {
            _writer.Dispose();
        }
    }
}
