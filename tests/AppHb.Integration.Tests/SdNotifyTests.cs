using System.Net.Sockets;
using System.Text;
using AppHb.Client;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>The sd_notify helper against a real datagram socket standing in for systemd's NOTIFY_SOCKET.</summary>
public class SdNotifyTests
{
    [Fact]
    public void Each_call_sends_one_datagram_with_the_systemd_assignment()
    {
        using var directory = new TempDirectory();
        var path = directory.File("notify.sock");
        using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        receiver.Bind(new UnixDomainSocketEndPoint(path));
        receiver.ReceiveTimeout = 5000;
        using var notify = new SdNotify(path);

        Assert.True(notify.Ready());
        Assert.True(notify.Watchdog());
        Assert.True(notify.Status("serving 3 clients"));
        Assert.True(notify.Stopping());
        var buffer = new byte[256];
        string Next() => Encoding.UTF8.GetString(buffer, 0, receiver.Receive(buffer));
        Assert.Equal(["READY=1", "WATCHDOG=1", "STATUS=serving 3 clients", "STOPPING=1"], new[] { Next(), Next(), Next(), Next() });
    }

    [Fact]
    public void Abstract_socket_addresses_start_with_at()
    {
        var name = "apphb-test-" + Guid.NewGuid().ToString("N");
        using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        receiver.Bind(new UnixDomainSocketEndPoint("\0" + name));
        receiver.ReceiveTimeout = 5000;
        using var notify = new SdNotify("@" + name);
        Assert.True(notify.Ready());
        var buffer = new byte[64];
        Assert.Equal("READY=1", Encoding.UTF8.GetString(buffer, 0, receiver.Receive(buffer)));
    }

    [Fact]
    public void Without_notify_socket_every_call_is_a_harmless_false()
    {
        using var notify = new SdNotify(notifySocket: null);
        Assert.False(notify.IsEnabled);
        Assert.False(notify.Ready());
        Assert.False(notify.Watchdog());
    }
}
