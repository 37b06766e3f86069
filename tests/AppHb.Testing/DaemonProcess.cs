using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;

namespace AppHb.Testing;

/// <summary>The real apphbd as a child process on a private socket, with its log captured line by line.</summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SemaphoreSlim _lineArrived = new(0);
    private Process? _process;

    private readonly IReadOnlyDictionary<string, string> _environment;

    /// <summary>RLIMIT_NOFILE to start the daemon under (soft and hard), or null for the test's own.</summary>
    private int? _openFileLimit;
    private bool _hangupIgnored;
    private string? _networkNamespace;

    private DaemonProcess(TempDirectory directory, string configPath, string socketPath, IReadOnlyDictionary<string, string>? environment)
    {
        _environment = environment ?? new Dictionary<string, string>();
        Directory = directory;
        ConfigPath = configPath;
        SocketPath = socketPath;
    }

    public TempDirectory Directory { get; }

    public string ConfigPath { get; }

    public string SocketPath { get; }

    public int Pid => _process?.Id ?? 0;

    public IReadOnlyCollection<string> Lines => _lines;

    /// <summary>Starts apphbd with the none backend and <paramref name="extraYaml"/> appended to a minimal config.</summary>
    /// <param name="openFileLimit">Starts the daemon under this RLIMIT_NOFILE (util-linux prlimit), to reach it on purpose.</param>
    /// <param name="hangupIgnored">Starts the daemon under nohup: it inherits SIGHUP ignored, as from a shell script
    /// that trapped it.</param>
    public static async Task<DaemonProcess> StartAsync(string extraYaml = "", TimeSpan? period = null, bool realtime = true,
        IReadOnlyDictionary<string, string>? environment = null, TempDirectory? directory = null, int? openFileLimit = null,
        string? networkNamespace = null, bool hangupIgnored = false)
    {
        if (new[] { openFileLimit is not null, networkNamespace is not null, hangupIgnored }.Count(b => b) > 1)
        {
            throw new ArgumentException("an open-file limit, a network namespace and an ignored SIGHUP are exclusive");
        }

        directory ??= new TempDirectory();
        var socket = directory.File("apphbd.sock");
        var config = directory.File("apphbd.yaml");
        var tickle = period ?? TimeSpan.FromMilliseconds(200);
        await System.IO.File.WriteAllTextAsync(config, $"""
            socket:
              path: {socket}
            watchdog:
              backend: none
              timeout: 5s
              period: {tickle.TotalMilliseconds}ms
            realtime:
              enabled: {(realtime ? "true" : "false")}
              lock-memory: false
            {(extraYaml.Contains("metrics:", StringComparison.Ordinal) ? string.Empty : "metrics:\n  listen: 127.0.0.1:0")}
            {(extraYaml.Contains("snmp:", StringComparison.Ordinal) ? string.Empty : "snmp:\n  agentx: off")}
            {extraYaml}
            """);
        var daemon = new DaemonProcess(directory, config, socket, environment) { _openFileLimit = openFileLimit, _networkNamespace = networkNamespace, _hangupIgnored = hangupIgnored };
        await daemon.StartProcessAsync();
        return daemon;
    }

    /// <summary>Starts (again) on the same socket and config: a daemon restart.</summary>
    public async Task StartProcessAsync()
    {
        // APPHB_TEST_DAEMON names a published (native) apphbd to run instead of the JIT build: tests/run-all.sh runs the
        // integration tests once more that way, so the shipped binary does everything the tests ask.
        var native = Environment.GetEnvironmentVariable("APPHB_TEST_DAEMON") is { Length: > 0 } path ? path : null;
        var info = new ProcessStartInfo(_networkNamespace is not null ? "ip" : _openFileLimit is not null ? "/usr/bin/prlimit" : _hangupIgnored ? "/usr/bin/nohup" : native ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (_networkNamespace is { } netns)
        {
            // ip execs the command inside the namespace: the process is the daemon itself.
            info.ArgumentList.Add("netns");
            info.ArgumentList.Add("exec");
            info.ArgumentList.Add(netns);
            info.ArgumentList.Add(native ?? "dotnet");
        }

        foreach (var (key, value) in _environment)
        {
            info.Environment[key] = value;
        }

        if (_openFileLimit is { } limit)
        {
            // prlimit execs the command: the process is the daemon itself.
            info.ArgumentList.Add($"--nofile={limit}:{limit}");
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(native ?? "dotnet");
        }

        if (_hangupIgnored)
        {
            // nohup sets SIGHUP to ignored and execs the command: the process is the daemon itself.
            info.ArgumentList.Add(native ?? "dotnet");
        }

        if (native is null)
        {
            info.ArgumentList.Add(RepositoryPaths.DaemonDll);
        }

        info.ArgumentList.Add("--config");
        info.ArgumentList.Add(ConfigPath);
        // A restart must wait for the new process's line, not find the old one's.
        var skip = _lines.Count;
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start apphbd");
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await WaitForLineAsync("apphbd ready", TimeSpan.FromSeconds(30), skip);
    }

    /// <summary>Waits for a log line containing <paramref name="text"/> (after <paramref name="skip"/> lines).</summary>
    public async Task<string> WaitForLineAsync(string text, TimeSpan timeout, int skip = 0)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            var match = _lines.Skip(skip).FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (match is not null)
            {
                return match;
            }

            if (_process is { HasExited: true })
            {
                throw new InvalidOperationException($"apphbd exited ({_process.ExitCode}) while waiting for \"{text}\":\n{string.Join('\n', _lines)}");
            }

            await _lineArrived.WaitAsync(TimeSpan.FromMilliseconds(50));
        }

        throw new TimeoutException($"no log line with \"{text}\" within {timeout}:\n{string.Join('\n', _lines)}");
    }

    /// <summary>Resident set size from /proc, in bytes.</summary>
    public long ResidentBytes()
    {
        foreach (var line in System.IO.File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>SIGKILL: the daemon crashes.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM and wait: an orderly stop. Returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return _process?.ExitCode ?? 0;
        }

        _ = ProcessRunner.Signal(process.Id, 15);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }

    /// <summary>Connects a raw socket to the daemon.</summary>
    public async Task<Socket> ConnectAsync()
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath));
        return socket;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
        }

        _process?.Dispose();
        Directory.Dispose();
        _lineArrived.Dispose();
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        _lineArrived.Release();
    }
}
