using System.Diagnostics;
using System.Text;

namespace AppHb.Cluster.Fencing;

/// <summary>Fences with a ClusterLabs fence agent (<c>fence_ipmilan</c>, <c>fence_virsh</c>, <c>fence_apc_snmp</c>,
/// ...), per the fence-agent API: the options as <c>key=value</c> lines on its standard input, <c>action=off</c>, then
/// <c>action=status</c> until it reports off (exit status 2; 0 is on, anything else an error). Configured with
/// <c>action: reboot</c>, a successful reboot is the confirmation: its off half happened. The whole sequence has the
/// method's timeout; an agent still running then is killed, and the fence has failed.</summary>
public sealed class FenceAgentDriver : FenceDriver
{
    private const int StatusOn = 0;
    private const int StatusOff = 2;
    private static readonly TimeSpan StatusPause = TimeSpan.FromMilliseconds(200);
    private const int KeptOutput = 2000;
    private readonly string _agent;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _options;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly bool _reboot;

    public FenceAgentDriver(string agent, IReadOnlyList<KeyValuePair<string, string>> options, TimeSpan timeout, TimeProvider time)
    {
        ArgumentException.ThrowIfNullOrEmpty(agent);
        ArgumentNullException.ThrowIfNull(options);
        _agent = agent;
        _reboot = options.Any(o => o.Key == "action" && o.Value == "reboot");
        // The action is this driver's to give; what the configuration said of it is kept only as "reboot or not".
        _options = [.. options.Where(o => o.Key != "action")];
        _timeout = timeout;
        _time = time;
    }

    public override string Description => $"agent {Path.GetFileName(_agent)}";

    public override async Task<FenceResult> FenceAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(_agent))
        {
            return new FenceResult(false, $"{Description}: {_agent} does not exist (is the fence-agents package installed?)");
        }

        // The timeout on the same clock as the pauses between status requests.
        using var expiry = new CancellationTokenSource(_timeout, _time);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, expiry.Token);
        var started = _time.GetTimestamp();
        try
        {
            var action = _reboot ? "reboot" : "off";
            var (code, output) = await RunAsync(action, deadline.Token);
            if (code != 0)
            {
                return new FenceResult(false, $"{Description}: action={action} failed with exit status {code}{Said(output)}");
            }

            if (_reboot)
            {
                return new FenceResult(true, $"{Description}: the peer was rebooted (action=reboot) in {Elapsed(started)}");
            }

            // "off" returned: believed only when status says so.
            while (true)
            {
                (code, output) = await RunAsync("status", deadline.Token);
                if (code == StatusOff)
                {
                    return new FenceResult(true, $"{Description}: the peer is off (action=off, then status reports off) after {Elapsed(started)}");
                }

                if (code != StatusOn)
                {
                    return new FenceResult(false, $"{Description}: action=status failed with exit status {code}{Said(output)}");
                }

                await Task.Delay(StatusPause, _time, deadline.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new FenceResult(false, $"{Description}: not confirmed within the method's timeout of {_timeout.TotalSeconds:0.###} s");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return new FenceResult(false, $"{Description}: cannot run {_agent}: {e.Message}");
        }
    }

    /// <summary>Runs the agent once with <paramref name="action"/>; its exit status and what it printed (both
    /// streams, the end of them). Killed, with everything it started, when <paramref name="cancellationToken"/>
    /// fires.</summary>
    private async Task<(int Code, string Output)> RunAsync(string action, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(_agent)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{_agent} did not start");
        var output = new StringBuilder();
        var lines = new Lock();
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var input = new StringBuilder();
            foreach (var (key, value) in _options)
            {
                input.Append(key).Append('=').Append(value).Append('\n');
            }

            input.Append("action=").Append(action).Append('\n');
            await process.StandardInput.WriteAsync(input.ToString().AsMemory(), cancellationToken);
            process.StandardInput.Close();
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // Timed out (or the agent closed its input early and was still running): it must not outlive the fence.
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }

            if (e is OperationCanceledException)
            {
                throw;
            }
        }

        // The exit is seen before the last lines of output: wait for the streams to end.
        process.WaitForExit();
        lock (lines)
        {
            return (process.ExitCode, output.ToString());
        }

        void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (lines)
            {
                if (output.Length < KeptOutput)
                {
                    output.Append(output.Length == 0 ? string.Empty : " | ").Append(line);
                }
            }
        }
    }

    private string Elapsed(long started) => $"{_time.GetElapsedTime(started).TotalSeconds:0.###} s";

    private static string Said(string output) => output.Length == 0 ? " (it printed nothing)" : $": {output}";
}
