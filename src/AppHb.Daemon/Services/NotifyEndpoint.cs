using System.Net.Sockets;
using System.Text;
using AppHb.Linux.Accounts;

namespace AppHb.Daemon.Services;

/// <summary>One sd_notify message from a service.</summary>
internal readonly record struct NotifyMessage(bool Ready, bool Watchdog, bool WatchdogTrigger, bool Stopping, string? Status);

/// <summary>The NOTIFY_SOCKET handed to one service: a datagram socket of its own, so every message is attributed to
/// the service by where it arrives (any process of the service may send, as with systemd's NotifyAccess=all), and
/// owned by the service's user so nobody else can send READY=1 or WATCHDOG=1 for it.</summary>
internal sealed class NotifyEndpoint : IDisposable
{
    private readonly Socket _socket;

    public NotifyEndpoint(string path, uint? ownerUid, uint? ownerGid)
    {
        Path = path;
        File.Delete(path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            _socket.Bind(new UnixDomainSocketEndPoint(path));
            if (ownerUid is not null || ownerGid is not null)
            {
                UnixAccounts.ChangeOwner(path, ownerUid ?? 0, ownerGid ?? 0);
            }

            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
    }

    public string Path { get; }

    /// <summary>Receives until disposed; each datagram is parsed (sd_notify(3): newline-separated VAR=value).</summary>
    public async Task ReceiveAsync(Action<NotifyMessage> onMessage, Action<string> onBadMessage)
    {
        var buffer = new byte[4096];
        while (true)
        {
            int read;
            try
            {
                read = await _socket.ReceiveAsync(buffer, SocketFlags.None);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(buffer, 0, read);
            }
            catch (DecoderFallbackException)
            {
                onBadMessage($"a {read}-byte datagram that is not UTF-8");
                continue;
            }

            onMessage(Parse(text));
        }
    }

    internal static NotifyMessage Parse(string text)
    {
        bool ready = false, watchdog = false, trigger = false, stopping = false;
        string? status = null;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            switch (line)
            {
                case "READY=1":
                    ready = true;
                    break;
                case "WATCHDOG=1":
                    watchdog = true;
                    break;
                case "WATCHDOG=trigger":
                    trigger = true;
                    break;
                case "STOPPING=1":
                    stopping = true;
                    break;
                default:
                    if (line.StartsWith("STATUS=", StringComparison.Ordinal))
                    {
                        status = line[7..];
                    }

                    break;
            }
        }

        return new NotifyMessage(ready, watchdog, trigger, stopping, status);
    }

    public void Dispose()
    {
        _socket.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }
}
