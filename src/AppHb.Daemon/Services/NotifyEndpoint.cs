using System.Net.Sockets;
using System.Text;
using AppHb.Core.Supervision;
using AppHb.Linux.Accounts;

namespace AppHb.Daemon.Services;

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

    /// <summary>Receives until disposed or cancelled; each datagram is parsed (sd_notify(3): newline-separated
    /// VAR=value).</summary>
    public async Task ReceiveAsync(Action<NotifyMessage> onMessage, Action<string> onBadMessage, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        var utf8 = new UTF8Encoding(false, true);
        while (true)
        {
            int read;
            try
            {
                read = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            string text;
            try
            {
                text = utf8.GetString(buffer, 0, read);
            }
            catch (DecoderFallbackException)
            {
                onBadMessage($"a {read}-byte datagram that is not UTF-8");
                continue;
            }

            onMessage(NotifyMessage.Parse(text));
        }
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
