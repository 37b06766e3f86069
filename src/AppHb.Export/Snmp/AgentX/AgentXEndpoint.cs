using System.Net;
using System.Net.Sockets;

namespace AppHb.Export.Snmp.AgentX;

/// <summary>Where the master agent listens, written as net-snmp's <c>agentXSocket</c> is: a path, <c>unix:PATH</c>, or
/// <c>tcp:HOST:PORT</c> with an IP address or localhost (snmpd(8), snmpd.conf(5)).</summary>
public sealed record AgentXEndpoint(EndPoint Address, string Text)
{
    /// <summary>net-snmp's default AgentX socket.</summary>
    public const string DefaultPath = "/var/agentx/master";

    public static bool TryParse(string text, out AgentXEndpoint? endpoint, out string? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        endpoint = null;
        error = null;
        var path = text.StartsWith("unix:", StringComparison.Ordinal) ? text[5..] : text;
        if (path.StartsWith('/'))
        {
            if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
            {
                error = "is longer than the 107 bytes a Unix socket path may have";
                return false;
            }

            endpoint = new AgentXEndpoint(new UnixDomainSocketEndPoint(path), text);
            return true;
        }

        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            var hostPort = text[4..];
            var colon = hostPort.LastIndexOf(':');
            if (colon > 0 && ushort.TryParse(hostPort[(colon + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port > 0)
            {
                var host = hostPort[..colon].Trim('[', ']');
                var address = host == "localhost" ? IPAddress.Loopback : IPAddress.TryParse(host, out var parsed) ? parsed : null;
                if (address is not null)
                {
                    endpoint = new AgentXEndpoint(new IPEndPoint(address, port), text);
                    return true;
                }
            }
        }

        error = $"\"{text}\" is not an AgentX address: use a socket path (/var/agentx/master), unix:PATH, tcp:127.0.0.1:705, or off";
        return false;
    }

    public Socket CreateSocket() => Address is UnixDomainSocketEndPoint
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

    public override string ToString() => Text;
}
