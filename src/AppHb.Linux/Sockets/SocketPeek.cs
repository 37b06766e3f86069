using System.Net.Sockets;

namespace AppHb.Linux.Sockets;

/// <summary>Calls on a socket's descriptor that never block, beside whatever asynchronous operation the runtime has
/// pending on it: a look at what is queued (recv with MSG_PEEK | MSG_DONTWAIT), and a last word (send with
/// MSG_DONTWAIT).</summary>
public static class SocketPeek
{
    /// <summary>Sends what fits in the socket's buffer now, without waiting; the number of bytes sent (0 when none fit,
    /// the peer is gone or the socket is closed).</summary>
    public static unsafe int SendNow(Socket socket, ReadOnlySpan<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            fixed (byte* data = bytes)
            {
                // MSG_NOSIGNAL: a closed peer is an error return, never a SIGPIPE.
                var sent = Interop.Send((int)handle.DangerousGetHandle(), data, (nuint)bytes.Length, Interop.MSG_DONTWAIT | Interop.MSG_NOSIGNAL);
                return sent > 0 ? (int)sent : 0;
            }
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>Copies up to <paramref name="destination"/>'s length of the queued bytes; 0 when nothing is queued, the
    /// peer closed, or the socket is gone.</summary>
    public static unsafe int Queued(Socket socket, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            fixed (byte* bytes = destination)
            {
                var read = Interop.Recv((int)handle.DangerousGetHandle(), bytes, (nuint)destination.Length, Interop.MSG_PEEK | Interop.MSG_DONTWAIT);
                return read > 0 ? (int)read : 0;
            }
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
