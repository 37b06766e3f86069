using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using AppHb.Client;
using AppHb.Protocol;

namespace AppHb.Benchmarks;

/// <summary>One heartbeat daemon under test, started fresh for each phase.</summary>
internal interface IHeartbeatDaemon : IAsyncDisposable
{
    string Name { get; }
    string Protocol { get; }
    string Socket { get; }
    int Pid { get; }
    /// <summary>Everything the daemon reports (events, syslog), timestamped on arrival from start to stop.</summary>
    Observer Events { get; }
    /// <summary>The index of the hung client an observed message reports, or null for any other message.</summary>
    Func<string, int?> HungClientIndex { get; }
    /// <summary>When the daemon raised an observed message, on the <see cref="Stopwatch"/> clock, given when it
    /// arrived: an observer that reads thousands of events under load receives them late, and lateness in the
    /// observer is not the daemon's.</summary>
    Func<string, long, long> RaisedAt { get; }
}

/// <summary>Our apphbd, published as it ships: NativeAOT.</summary>
internal sealed class OurDaemon : IHeartbeatDaemon
{
    private readonly Process _process;
    private readonly string _directory;

    private OurDaemon(Process process, string directory, string socket)
    {
        _process = process;
        _directory = directory;
        Socket = socket;
    }

    public string Name => "apphbd (AppHb)";
    public string Protocol => "apphb";
    public string Socket { get; }
    public int Pid => _process.Id;

    public static async Task<OurDaemon> StartAsync(string binary, string work, TimeSpan tickle)
    {
        var directory = Directory.CreateTempSubdirectory("ours-").FullName;
        var socket = Path.Combine(directory, "apphbd.sock");
        var config = Path.Combine(directory, "apphbd.yaml");
        await File.WriteAllTextAsync(config, $"""
            socket:
              path: {socket}
            watchdog:
              backend: none
              timeout: 10s
              period: {tickle.TotalMilliseconds}ms
            realtime:
              enabled: true
              lock-memory: true
            clients:
              # Every simulated client is root's: past the default 4,096 per uid they could only ask for status.
              max-connections-per-uid: 100000
            """);
        var info = new ProcessStartInfo(binary, ["--config", config]) { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var watch = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(30) || process.HasExited)
            {
                throw new InvalidOperationException("apphbd did not start");
            }

            await Task.Delay(20);
        }

        var daemon = new OurDaemon(process, directory, socket);
        daemon.Events = daemon.ObserveEvents();
        return daemon;
    }

    public Observer Events { get; private set; } = null!;

    public Task<StatusDocument> StatusAsync() => new AppHbControl(Socket).GetStatusAsync();

    private Observer ObserveEvents()
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(Socket));
        socket.Send(FrameWriter.EmptyToArray(FrameType.Subscribe, 1));
        var buffer = new byte[FrameFormat.MaxFrameSize * 2];
        var filled = 0;
        string? Receive()
        {
            while (true)
            {
                if (FrameReader.TryReadFrame(buffer.AsSpan(0, filled), out var header))
                {
                    var payload = buffer.AsSpan(FrameFormat.HeaderSize, header.PayloadLength).ToArray();
                    Buffer.BlockCopy(buffer, header.FrameLength, buffer, 0, filled - header.FrameLength);
                    filled -= header.FrameLength;
                    if (header.Type == FrameType.Event)
                    {
                        return Encoding.UTF8.GetString(payload);
                    }

                    continue;
                }

                var read = socket.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
                if (read == 0)
                {
                    return null;
                }

                filled += read;
            }
        }

        var observer = new Observer("observe-apphbd", Receive, socket.Dispose);
        Thread.Sleep(100);
        return observer;
    }

    public Func<string, int?> HungClientIndex => message =>
    {
        var e = ProtocolJsonContext.ReadEvent(Encoding.UTF8.GetBytes(message));
        return e.Kind == "hung" && e.Client is { } c && int.TryParse(c.Instance, out var i) ? i : null;
    };

    /// <summary>From the event's own <c>at</c> (wall clock), placed on the Stopwatch clock through one pair of readings
    /// of both taken at start (the run is minutes long: drift between the two is negligible).</summary>
    public Func<string, long, long> RaisedAt => (message, _) =>
    {
        var at = ProtocolJsonContext.ReadEvent(Encoding.UTF8.GetBytes(message)).At;
        return _clocks.Stopwatch + (long)((at - _clocks.Wall).TotalSeconds * Stopwatch.Frequency);
    };

    private readonly (long Stopwatch, DateTimeOffset Wall) _clocks = (Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);

    public async ValueTask DisposeAsync()
    {
        Events.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>Linux-HA's apphbd (Debian package heartbeat) with no watchdog device, or a FIFO standing in for one so
/// its tickles can be timed. It logs only to syslog: the harness owns /dev/log for the run (or, where a syslog
/// already owns it, the daemon runs in a private mount namespace with the harness's socket bound over /dev/log).</summary>
internal sealed class LinuxHaDaemon : IHeartbeatDaemon
{
    public const string Binary = "/usr/libexec/heartbeat/apphbd";
    private const string PidFile = "/var/run/apphbd.pid";
    private readonly string _directory;
    private readonly Socket _syslog;
    private readonly string _syslogPath;
    private readonly bool _ownsDevLog;

    private LinuxHaDaemon(int pid, string directory, Socket syslog, string syslogPath, bool ownsDevLog)
    {
        Pid = pid;
        _directory = directory;
        _syslog = syslog;
        _syslogPath = syslogPath;
        _ownsDevLog = ownsDevLog;
        var buffer = new byte[4096];
        Events = new Observer("observe-linuxha", () =>
        {
            var n = _syslog.Receive(buffer);
            return Encoding.UTF8.GetString(buffer, 0, n);
        }, _syslog.Dispose);
    }

    public Observer Events { get; }

    public string Name => "Linux-HA apphbd 3.0.6";
    public string Protocol => "linuxha";
    public string Socket => "/var/run/heartbeat/apphb.comm";
    public int Pid { get; }

    public static async Task<LinuxHaDaemon> StartAsync(string? watchdogFifo = null, int watchdogIntervalMs = 100)
    {
        Stop();
        var directory = Directory.CreateTempSubdirectory("linuxha-").FullName;
        var config = Path.Combine(directory, "apphbd.cf");
        await File.WriteAllTextAsync(config, "realtime yes\ndebug_level 0\n"
            + (watchdogFifo is null ? string.Empty : $"watchdog_device {watchdogFifo}\nwatchdog_interval_ms {watchdogIntervalMs}\n"));
        Directory.CreateDirectory("/var/run/heartbeat");

        var ownsDevLog = !File.Exists("/dev/log");
        var syslogPath = ownsDevLog ? "/dev/log" : Path.Combine(directory, "log.sock");
        var syslog = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        syslog.Bind(new UnixDomainSocketEndPoint(syslogPath));
        if (ownsDevLog)
        {
            Machine.Run(Binary, "-c", config);
        }
        else
        {
            Machine.Run("unshare", "--mount", "--propagation", "private", "sh", "-c", $"mount --bind {syslogPath} /dev/log && exec {Binary} -c {config}");
        }

        var watch = Stopwatch.StartNew();
        int? pid;
        while ((pid = Machine.FindPid(Binary)) is null || !File.Exists("/var/run/heartbeat/apphb.comm"))
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new InvalidOperationException("Linux-HA apphbd did not start");
            }

            await Task.Delay(20);
        }

        return new LinuxHaDaemon(pid.Value, directory, syslog, syslogPath, ownsDevLog);
    }

    // "apphb client 'load' / '17' (pid 1234) failed to heartbeat"
    public Func<string, int?> HungClientIndex => message =>
    {
        if (!message.Contains("failed to heartbeat", StringComparison.Ordinal))
        {
            return null;
        }

        var start = message.IndexOf("/ '", StringComparison.Ordinal) + 3;
        var end = message.IndexOf('\'', start);
        return int.TryParse(message.AsSpan(start, end - start), out var i) ? i : null;
    };

    /// <summary>Its syslog line carries only whole seconds; the datagram's arrival is the best measure there is (it
    /// writes to /dev/log as it raises).</summary>
    public Func<string, long, long> RaisedAt => (_, arrived) => arrived;

    /// <summary>Kills any running instance and its pidfile: after its clients leave, 3.0.6 can linger as a zombie
    /// that its pidfile check still takes for a live daemon.</summary>
    public static void Stop()
    {
        while (Machine.FindPid(Binary) is { } pid)
        {
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (ArgumentException)
            {
            }

            Thread.Sleep(50);
        }

        File.Delete(PidFile);
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        Events.Dispose();
        if (_ownsDevLog)
        {
            File.Delete(_syslogPath);
        }

        Directory.Delete(_directory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
