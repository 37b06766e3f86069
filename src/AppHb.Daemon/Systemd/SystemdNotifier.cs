using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace AppHb.Daemon.Systemd;

/// <summary>Talks to the service manager that started us through $NOTIFY_SOCKET (sd_notify(3)); like
/// Microsoft.Extensions.Hosting.Systemd's SystemdNotifier, plus the watchdog interval that package ignores.</summary>
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;

    public SystemdNotifier() : this(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"),
        Environment.GetEnvironmentVariable("WATCHDOG_USEC"), Environment.GetEnvironmentVariable("WATCHDOG_PID"))
    {
    }

    public SystemdNotifier(string? notifySocket, string? watchdogUsec, string? watchdogPid)
    {
        if (!string.IsNullOrEmpty(notifySocket))
        {
            _endPoint = new UnixDomainSocketEndPoint(notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket);
            _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        }

        // WATCHDOG_PID names the process the watchdog is meant for; a child that inherited it must not answer.
        var forUs = string.IsNullOrEmpty(watchdogPid)
            || watchdogPid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (forUs && ulong.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0)
        {
            WatchdogInterval = TimeSpan.FromMicroseconds(usec);
        }
    }

    /// <summary>Whether a service manager listens (the daemon runs under systemd, Type=notify).</summary>
    public bool IsEnabled => _socket is not null;

    /// <summary>systemd's WatchdogSec= for this process, if set: ping at half of it.</summary>
    public TimeSpan? WatchdogInterval { get; }

    public void Notify(params ServiceState[] states)
    {
        if (_socket is null || _endPoint is null)
        {
            return;
        }

        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(string.Join('\n', states.Select(s => s.Text))), _endPoint);
        }
        catch (SocketException)
        {
            // The manager went away; nothing to tell.
        }
    }

    public void Dispose() => _socket?.Dispose();
}
