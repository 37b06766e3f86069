using System.Diagnostics;
using System.Text;

namespace AppHb.Cluster.Fencing;

/// <summary>Fences with a ClusterLabs fence agent (<c>fence_ipmilan</c>, <c>fence_virsh</c>, <c>fence_apc_snmp</c>,
/// ...), per the fence-agent API: the options as <c>key=value</c> lines on its standard input, <c>action=off</c>, then
/// <c>action=status</c> until it reports off (exit status 2; 0 is on, anything else an error). Configured with
/// <c>action: reboot</c>, a successful reboot is the confirmation: its off half happened. The whole sequence has the
/// method's timeout; an agent still running then is killed, and the fence has failed. Each status request's agent is
/// started while the request before it runs, and given its input only once that has returned.</summary>
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
        // The next status request's agent, started ahead: an agent acts only once its input has ended (the API's
        // key=value lines up to end of file), so it waits, harmless, until the action before it has returned; then
        // only the writing of its input is left on the fence's time, not an interpreter's start (a Python agent's
        // is a few hundred milliseconds; the tests' shell agent's, a few).
        AgentRun? next = null;
        try
        {
            var action = _reboot ? "reboot" : "off";
            var off = AgentRun.Start(_agent);
            try
            {
                next = _reboot ? null : AgentRun.Start(_agent);
            }
            catch
            {
                off.Abandon();
                throw;
            }

            var (code, output) = await off.CompleteAsync(_options, action, deadline.Token);
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
                var status = next ?? AgentRun.Start(_agent);
                next = null;
                (code, output) = await status.CompleteAsync(_options, "status", deadline.Token);
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
        finally
        {
            // Started ahead and not needed (the fence ended before it): it never had its input, so it did nothing.
            next?.Abandon();
        }
    }

    /// <summary>One run of the agent: started, then given its options and action and awaited. Killed, with
    /// everything it started, when abandoned or when the wait is cancelled.</summary>
    private sealed class AgentRun
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly Lock _lines = new();

        private AgentRun(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Keep(e.Data);
            process.ErrorDataReceived += (_, e) => Keep(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public static AgentRun Start(string agent)
        {
            var info = new ProcessStartInfo(agent)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            return new AgentRun(Process.Start(info) ?? throw new InvalidOperationException($"{agent} did not start"));
        }

        /// <summary>Gives the agent its input (the options, then <c>action=</c><paramref name="action"/>) and waits
        /// for its exit: its status and what it printed (both streams, the start of them).</summary>
        public async Task<(int Code, string Output)> CompleteAsync(IReadOnlyList<KeyValuePair<string, string>> options, string action, CancellationToken cancellationToken)
        {
            using (_process)
            {
                try
                {
                    var input = new StringBuilder();
                    foreach (var (key, value) in options)
                    {
                        input.Append(key).Append('=').Append(value).Append('\n');
                    }

                    input.Append("action=").Append(action).Append('\n');
                    await _process.StandardInput.WriteAsync(input.ToString().AsMemory(), cancellationToken);
                    _process.StandardInput.Close();
                    await _process.WaitForExitAsync(cancellationToken);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                    // Timed out (or the agent closed its input early and was still running): it must not outlive the fence.
                    await KillAsync();
                    if (e is OperationCanceledException)
                    {
                        throw;
                    }
                }

                // The exit is seen before the last lines of output: wait for the streams to end.
                _process.WaitForExit();
                lock (_lines)
                {
                    return (_process.ExitCode, _output.ToString());
                }
            }
        }

        /// <summary>Kills a run that was never given its input.</summary>
        public void Abandon()
        {
            using (_process)
            {
                Kill();
                _process.WaitForExit();
            }
        }

        private async Task KillAsync()
        {
            Kill();
            await _process.WaitForExitAsync(CancellationToken.None);
        }

        /// <summary>The agent and everything it started, unless it has ended.</summary>
        private void Kill()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        private void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_lines)
            {
                if (_output.Length < KeptOutput)
                {
                    _output.Append(_output.Length == 0 ? string.Empty : " | ").Append(line);
                }
            }
        }
    }

    private string Elapsed(long started) => $"{_time.GetElapsedTime(started).TotalSeconds:0.###} s";

    private static string Said(string output) => output.Length == 0 ? " (it printed nothing)" : $": {output}";
}
