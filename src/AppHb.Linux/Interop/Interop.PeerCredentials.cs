using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>include/uapi/asm-generic/socket.h (x86-64 and arm64 use the generic values).</summary>
    internal const int SOL_SOCKET = 1;
    internal const int SO_PEERCRED = 17;

    /// <summary>struct ucred (include/linux/socket.h, glibc's sys/socket.h with _GNU_SOURCE).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct UCred
    {
        public int Pid;
        public uint Uid;
        public uint Gid;
    }

    /// <summary>getsockopt(SOL_SOCKET, SO_PEERCRED) through the socket's own option call: the credentials the kernel
    /// recorded at connect(), which a client cannot forge.</summary>
    internal static unsafe UCred GetPeerCredentials(Socket socket)
    {
        UCred credentials;
        socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, new Span<byte>(&credentials, sizeof(UCred)));
        return credentials;
    }
}
