using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Services;

/// <summary>Reads one child's stdout and stderr, line by line, into the daemon's log (with the service's name, so
/// <c>journalctl -u apphbd</c> shows it) and into a short in-memory tail for <c>apphbctl logs</c>.</summary>
internal sealed class ServiceOutput
{
    private const int MaxLine = 4096;
    private readonly string _service;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Queue<string> _tail = new();
    private readonly int _tailLines;

    public ServiceOutput(string service, ILogger logger, int tailLines = 200)
    {
        _service = service;
        _logger = logger;
        _tailLines = tailLines;
    }

    public IReadOnlyList<string> Tail(int lines)
    {
        lock (_gate)
        {
            return _tail.Skip(Math.Max(0, _tail.Count - lines)).ToList();
        }
    }

    /// <summary>Pumps until the child and everything that inherited its output closed it, or apphbd stops.</summary>
    public async Task PumpAsync(Socket socket, int pid, CancellationToken cancellationToken)
    {
        var buffer = new byte[8192];
        var pending = new StringBuilder();
        var decoder = Encoding.UTF8.GetDecoder();
        var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        using (socket)
        {
            while (true)
            {
                int read;
                try
                {
                    read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    break;
                }
                catch (ObjectDisposedException)
                {
                    break;
                }

                if (read == 0)
                {
                    break;
                }

                var count = decoder.GetChars(buffer, 0, read, chars, 0);
                for (var i = 0; i < count; i++)
                {
                    var c = chars[i];
                    if (c == '\n')
                    {
                        Emit(pending, pid);
                    }
                    else if (c != '\r')
                    {
                        pending.Append(c);
                        if (pending.Length >= MaxLine)
                        {
                            Emit(pending, pid);
                        }
                    }
                }
            }
        }

        if (pending.Length > 0)
        {
            Emit(pending, pid);
        }
    }

    private void Emit(StringBuilder pending, int pid)
    {
        var line = pending.ToString();
        pending.Clear();
        Log.ServiceOutput(_logger, _service, pid, line);
        lock (_gate)
        {
            _tail.Enqueue(line);
            while (_tail.Count > _tailLines)
            {
                _tail.Dequeue();
            }
        }
    }
}
