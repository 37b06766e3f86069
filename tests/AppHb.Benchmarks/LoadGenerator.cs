using System.Diagnostics;
using System.Globalization;

namespace AppHb.Benchmarks;

/// <summary>The native client simulator (native/hbload.c), compiled here with cc so both daemons face the same client.</summary>
internal sealed class LoadGenerator
{
    private readonly string _binary;

    public LoadGenerator(string workDirectory)
    {
        _binary = Path.Combine(workDirectory, "hbload");
        var source = Path.Combine(AppContext.BaseDirectory, "native", "hbload.c");
        Machine.Run("cc", "-O2", "-Wall", "-o", _binary, source);
    }

    public sealed record Result(int Registered, double RegisterMs, long Sent, long Blocked, double LoadSeconds, double ProcessedSeconds,
        IReadOnlyDictionary<int, long> BeatTimestamps)
    {
        public double ProcessedPerSecond => Sent / ProcessedSeconds;

        /// <summary>How long after the load stopped the daemon finished the beats queued before it.</summary>
        public double BacklogMs => Math.Max(0, (ProcessedSeconds - LoadSeconds) * 1000);
    }

    /// <summary>Starts a run; <paramref name="onBeatsDone"/> fires (stall mode) once every client has beaten.</summary>
    public async Task<Result> RunAsync(string protocol, string socket, int clients, int intervalMs, int warnMs, string mode,
        double argument, double seconds, TimeSpan timeout, Action? onBeatsDone = null, Action? onRegistered = null)
    {
        var info = new ProcessStartInfo(_binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new object[] { protocol, socket, clients, intervalMs, warnMs, mode, argument, seconds })
        {
            info.ArgumentList.Add(Convert.ToString(a, CultureInfo.InvariantCulture)!);
        }

        using var process = Process.Start(info)!;
        var values = new Dictionary<string, string>();
        var beats = new Dictionary<int, long>();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cancel.Token) is { } line)
            {
                if (line.StartsWith("beat ", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ');
                    beats[int.Parse(parts[1], CultureInfo.InvariantCulture)] = long.Parse(parts[2], CultureInfo.InvariantCulture);
                    if (beats.Count == clients)
                    {
                        onBeatsDone?.Invoke();
                    }

                    continue;
                }

                if (line.StartsWith("registered=", StringComparison.Ordinal))
                {
                    onRegistered?.Invoke();
                }

                foreach (var pair in line.Split(' '))
                {
                    var kv = pair.Split('=');
                    if (kv.Length == 2)
                    {
                        values[kv[0]] = kv[1];
                    }
                }
            }

            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"hbload {protocol} {clients} clients did not finish within {timeout.TotalSeconds:0} s ({string.Join(' ', values.Select(kv => $"{kv.Key}={kv.Value}"))})");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"hbload {protocol} failed ({process.ExitCode}): {await error}");
        }

        double D(string key) => double.Parse(values[key], CultureInfo.InvariantCulture);
        return new Result((int)D("registered"), D("register_ms"), (long)D("sent"), (long)D("blocked"), D("load_s"), D("processed_s"), beats);
    }
}
