using System.Diagnostics;

namespace AppHb.Replication.Tests;

/// <summary>Runs the crash worker (tests/AppHb.Replication.CrashWorker) as a process of its own and SIGKILLs it at a
/// random moment once it has reported some work: what both appliers' crash tests do each trial.</summary>
internal static class KilledWorker
{
    /// <param name="arguments">The worker's arguments.</param>
    /// <param name="reported">Each line it printed, as it printed it (on a thread of its own).</param>
    /// <param name="lines">How many lines to wait for first: past the runtime's start, into the applying.</param>
    /// <param name="maxDelayMs">The kill comes up to this long after those lines.</param>
    public static async Task RunAsync(IReadOnlyList<string> arguments, Action<string> reported, int lines, int maxDelayMs, Random random)
    {
        var worker = Path.Combine(AppContext.BaseDirectory, "AppHb.Replication.CrashWorker.dll");
        var info = new ProcessStartInfo("dotnet", [worker, .. arguments]) { RedirectStandardOutput = true };
        using var process = Process.Start(info)!;
        var seen = 0;
        var reading = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                reported(line);
                Interlocked.Increment(ref seen);
            }
        });
        while (Volatile.Read(ref seen) < lines && !process.HasExited)
        {
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        await Task.Delay(random.Next(0, maxDelayMs), TestContext.Current.CancellationToken);
        process.Kill();
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        await reading;
    }
}
