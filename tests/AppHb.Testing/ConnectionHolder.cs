using System.Diagnostics;
using System.Globalization;

namespace AppHb.Testing;

/// <summary>Another process, as another user, opening many connections to the daemon and holding them open until
/// released; it reports what each got within a second: "open" (no answer: served), "refused CODE MESSAGE" (an Error
/// frame, then the close), or "no answer" (closed without a frame).</summary>
public sealed class ConnectionHolder : IDisposable
{
    // poll, not select: a flood holds descriptors far above select's 1,024.
    private const string Script = """
        import socket, struct, sys, select, time
        path, count = sys.argv[1], int(sys.argv[2])
        held, verdicts = [], []
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            # A full listen backlog says EAGAIN: try again, as a client would, for up to 5 s.
            deadline = time.monotonic() + 5
            while True:
                try:
                    s.connect(path); break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        verdicts.append("connect failed backlog full for 5 s"); s.close(); s = None; break
                    time.sleep(0.001)
                except OSError as e:
                    verdicts.append("connect failed " + str(e.errno)); s.close(); s = None; break
            if s is not None:
                held.append(s)
        # One second for the daemon to accept them all and answer the ones it refuses.
        time.sleep(1.0)
        def readable(s, timeout_ms):
            p = select.poll(); p.register(s, select.POLLIN)
            return bool(p.poll(timeout_ms))
        for s in held:
            if not readable(s, 0):
                verdicts.append("open"); continue
            data = b""
            while readable(s, 500):
                try:
                    chunk = s.recv(4096)
                except OSError:
                    break
                if not chunk: break
                data += chunk
            if len(data) >= 16 and data[5] == 0x82:
                code = struct.unpack(">H", data[12:14])[0]
                n = struct.unpack(">H", data[14:16])[0]
                verdicts.append("refused %d %s" % (code, data[16:16 + n].decode("utf-8", "replace")))
            else:
                verdicts.append("no answer")
        for v in verdicts:
            print(v)
        print("DONE", flush=True)
        sys.stdin.read()
        """;

    private readonly Process _process;
    private readonly List<string> _verdicts = [];
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ConnectionHolder(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _done.TrySetResult();
            }
            else if (e.Data == "DONE")
            {
                _done.TrySetResult();
            }
            else
            {
                lock (_verdicts)
                {
                    _verdicts.Add(e.Data);
                }
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <param name="openFileLimit">The holder's own descriptor limit, for floods larger than the default allows.</param>
    public static ConnectionHolder Start(string socketPath, int count, uint uid, int? openFileLimit = null)
    {
        var info = new ProcessStartInfo("/usr/bin/setpriv") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        var arguments = new List<string> { $"--reuid={uid}", $"--regid={uid}", "--clear-groups", "--" };
        if (openFileLimit is { } limit)
        {
            // Raised as root (setpriv's caller), before the uid changes: prlimit runs inside setpriv's exec chain.
            info.FileName = "/usr/bin/prlimit";
            arguments.InsertRange(0, [$"--nofile={limit}:{limit}", "--", "/usr/bin/setpriv"]);
        }

        arguments.AddRange(["/usr/bin/python3", "-c", Script, socketPath, count.ToString(CultureInfo.InvariantCulture)]);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return new ConnectionHolder(Process.Start(info) ?? throw new InvalidOperationException("cannot start the connection holder"));
    }

    public async Task<List<string>> VerdictsAsync()
    {
        await _done.Task.WaitAsync(TimeSpan.FromMinutes(2));
        lock (_verdicts)
        {
            return [.. _verdicts];
        }
    }

    /// <summary>Closes every connection it holds (it exits).</summary>
    public void Release()
    {
        if (!_process.HasExited)
        {
            _process.StandardInput.Close();
            _process.WaitForExit(TimeSpan.FromSeconds(30));
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
    }
}
