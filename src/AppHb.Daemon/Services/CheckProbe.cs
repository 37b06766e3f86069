using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Linux.Processes;

namespace AppHb.Daemon.Services;

/// <summary>Runs API checks (type 2): TCP connect, HTTP GET, an OCF-style command, an LSB script's status. Each run is
/// bounded by the check's timeout; a command still running at its timeout is killed with its whole process group.</summary>
internal sealed class CheckProbe(ChildProcessTable children, Lazy<HttpClient> http)
{
    public async Task<CheckOutcome> RunAsync(string service, CheckDefinition check, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(check.Timeout);
        try
        {
            var (passed, notRunning, message) = check.Kind switch
            {
                CheckKind.Tcp => await TcpAsync(check, timeout.Token),
                CheckKind.Http => await HttpAsync(check, timeout.Token),
                CheckKind.Command => await CommandAsync(service, check, check.Command, OcfMeaning, timeout.Token),
                CheckKind.Lsb => await CommandAsync(service, check, [check.Target, "status"], LsbMeaning, timeout.Token),
                _ => (false, false, "unknown check type"),
            };
            return new CheckOutcome(passed, notRunning, message, Stopwatch.GetElapsedTime(started));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new CheckOutcome(false, false, $"timed out after {check.Timeout.TotalMilliseconds:0} ms", Stopwatch.GetElapsedTime(started));
        }
    }

    private static async Task<(bool, bool, string)> TcpAsync(CheckDefinition check, CancellationToken cancellationToken)
    {
        _ = ServicesConfiguration.TryParseHostPort(check.Target, out var host, out var port);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken);
            return (true, false, $"connected to {check.Target}");
        }
        catch (SocketException e)
        {
            return (false, e.SocketErrorCode == SocketError.ConnectionRefused, $"connect to {check.Target}: {e.Message}");
        }
    }

    private async Task<(bool, bool, string)> HttpAsync(CheckDefinition check, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.Value.GetAsync(check.Target, HttpCompletionOption.ResponseContentRead, cancellationToken);
            var status = (int)response.StatusCode;
            if (status != check.ExpectStatus)
            {
                return (false, false, $"GET {check.Target}: status {status}, expected {check.ExpectStatus}");
            }

            if (check.BodyPattern is not null)
            {
                var body = await response.Content.ReadAsStringAsync(cancellationToken);
                if (!Regex.IsMatch(body, check.BodyPattern, RegexOptions.None, TimeSpan.FromSeconds(1)))
                {
                    return (false, false, $"GET {check.Target}: status {status} but the body does not match /{check.BodyPattern}/");
                }
            }

            return (true, false, $"GET {check.Target}: {status}");
        }
        catch (HttpRequestException e)
        {
            return (false, e.HttpRequestError == HttpRequestError.ConnectionError, $"GET {check.Target}: {e.Message}");
        }
    }

    private static (bool, bool, string) OcfMeaning(int code) => code switch
    {
        0 => (true, false, "OCF_SUCCESS (0): running"),
        7 => (false, true, "OCF_NOT_RUNNING (7)"),
        _ => (false, false, $"OCF failure (exit code {code})"),
    };

    private static (bool, bool, string) LsbMeaning(int code) => code switch
    {
        0 => (true, false, "LSB status 0: running"),
        3 => (false, true, "LSB status 3: not running"),
        1 => (false, false, "LSB status 1: dead, but the pid file exists"),
        2 => (false, false, "LSB status 2: dead, but the lock file exists"),
        _ => (false, false, $"LSB status {code}: unknown"),
    };

    private async Task<(bool, bool, string)> CommandAsync(string service, CheckDefinition check, IReadOnlyList<string> argv,
        Func<int, (bool, bool, string)> meaning, CancellationToken cancellationToken)
    {
        var exited = new TaskCompletionSource<ChildExit>(TaskCreationOptions.RunContinuationsAsynchronously);
        var request = new SpawnRequest
        {
            Path = argv[0],
            Arguments = argv,
            Environment =
            [
                "PATH=" + ServicesConfiguration.DefaultPath,
                "APPHB_SERVICE=" + service,
                // The OCF depth: 0 for the frequent light check, 20 for the rare heavy one.
                "OCF_CHECK_LEVEL=" + (check.Heavy ? "20" : "0"),
            ],
            Output = ChildOutput.Capture,
        };
        SpawnedChild child;
        try
        {
            child = children.Spawn(request, exit => exited.TrySetResult(exit));
        }
        catch (IOException e)
        {
            return (false, false, e.Message);
        }

        var output = ReadFirstLineAsync(child.Output!, cancellationToken);
        try
        {
            var exit = await exited.Task.WaitAsync(cancellationToken);
            var firstLine = await output;
            var (passed, notRunning, text) = exit.ExitCode is { } code ? meaning(code) : (false, false, $"killed by {new ProcessExit(exit.ExitCode, exit.Signal)}");
            return (passed, notRunning, firstLine.Length > 0 ? $"{text}: {firstLine}" : text);
        }
        catch (OperationCanceledException)
        {
            ChildProcessTable.Signal(child.Pid, SignalNames.SIGKILL, group: true);
            throw;
        }
    }

    /// <summary>Drains the command's output; the first line says what it found. Cancelled with the check (its
    /// timeout, or the service stopping), which kills the command's group so the socket closes anyway.</summary>
    private static async Task<string> ReadFirstLineAsync(Socket socket, CancellationToken cancellationToken)
    {
        using (socket)
        {
            var buffer = new byte[1024];
            var discard = new byte[4096];
            var total = 0;
            try
            {
                // Drained to the end: a check that prints a lot must not die of SIGPIPE and be judged failed.
                while (true)
                {
                    var read = await socket.ReceiveAsync(total < buffer.Length ? buffer.AsMemory(total) : discard, SocketFlags.None, cancellationToken);
                    if (read == 0)
                    {
                        break;
                    }

                    total += total < buffer.Length ? read : 0;
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
            }

            var text = Encoding.UTF8.GetString(buffer, 0, total);
            var newline = text.IndexOf('\n', StringComparison.Ordinal);
            return (newline >= 0 ? text[..newline] : text).Trim();
        }
    }
}
