using System.Net.Sockets;
using System.Text;

namespace AppHb.Client;

/// <summary>systemd's notify protocol (sd_notify(3)) for processes supervised through NOTIFY_SOCKET, by systemd or by
/// apphbd. Each call sends one datagram; all return false when no NOTIFY_SOCKET is set, so an app can call them
/// unconditionally.</summary>
public sealed class SdNotify : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;

    /// <summary>Uses $NOTIFY_SOCKET (a path, or an abstract socket starting with '@').</summary>
    public SdNotify() : this(Environment.GetEnvironmentVariable("NOTIFY_SOCKET")) { }

    /// <summary>Uses the given notify socket address; null or empty disables notification.</summary>
    public SdNotify(string? notifySocket)
    {
        if (string.IsNullOrEmpty(notifySocket))
        {
            return;
        }

        // An abstract address is written with '@' and sent with a leading NUL (sd_notify(3)).
        _endPoint = new UnixDomainSocketEndPoint(notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>Whether a notify socket is configured.</summary>
    public bool IsEnabled => _socket is not null;

    /// <summary>The watchdog interval the supervisor expects (WATCHDOG_USEC), if it is meant for this process
    /// (WATCHDOG_PID absent or equal to our pid). Send <see cref="Watchdog"/> at half of it.</summary>
    public static TimeSpan? WatchdogInterval
    {
        get
        {
            var usec = Environment.GetEnvironmentVariable("WATCHDOG_USEC");
            var pid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
            if (!ulong.TryParse(usec, System.Globalization.CultureInfo.InvariantCulture, out var micros) || micros == 0)
            {
                return null;
            }

            if (pid is { Length: > 0 } && pid != Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
                return null;
            }

            return TimeSpan.FromMicroseconds(micros);
        }
    }

    /// <summary>READY=1: startup finished; dependents may start.</summary>
    public bool Ready() => Notify("READY=1");

    /// <summary>WATCHDOG=1: a keep-alive for the supervisor's watchdog.</summary>
    public bool Watchdog() => Notify("WATCHDOG=1");

    /// <summary>STATUS=...: a one-line status shown by the supervisor.</summary>
    public bool Status(string status) => Notify("STATUS=" + status);

    /// <summary>STOPPING=1: an orderly shutdown has begun.</summary>
    public bool Stopping() => Notify("STOPPING=1");

    /// <summary>Sends raw newline-separated assignments, e.g. "READY=1\nSTATUS=up".</summary>
    public bool Notify(string state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (_socket is null || _endPoint is null)
        {
            return false;
        }

        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), _endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Closes the datagram socket.</summary>
    public void Dispose() => _socket?.Dispose();
}
