using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    internal const int EPOLL_CLOEXEC = 0x80000;
    internal const int EPOLL_CTL_ADD = 1;
    internal const int EPOLL_CTL_DEL = 2;
    internal const int EPOLL_CTL_MOD = 3;
    internal const uint EPOLLIN = 0x1;
    internal const uint EPOLLOUT = 0x4;
    internal const uint EPOLLERR = 0x8;
    internal const uint EPOLLHUP = 0x10;
    internal const uint EPOLLRDHUP = 0x2000;

    /// <summary>struct epoll_event is declared packed on x86-64 (12 bytes, data at 4) and naturally aligned elsewhere
    /// (16 bytes, data at 8): include/uapi/linux/eventpoll.h, EPOLL_PACKED. Callers use these offsets on raw bytes.</summary>
    internal static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    internal static readonly int EpollEventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport(Libc, EntryPoint = "epoll_create1", SetLastError = true)]
    internal static partial int EpollCreate1(int flags);

    [LibraryImport(Libc, EntryPoint = "epoll_ctl", SetLastError = true)]
    internal static unsafe partial int EpollCtl(int epfd, int op, int fd, byte* epollEvent);

    [LibraryImport(Libc, EntryPoint = "epoll_wait", SetLastError = true)]
    internal static unsafe partial int EpollWait(int epfd, byte* events, int maxEvents, int timeoutMs);

    /// <summary>An epoll set and a non-blocking eventfd to wake its waiter with (a thread's loop): both close-on-exec;
    /// throws with the errno's text, leaking neither.</summary>
    internal static (FileDescriptorHandle Epoll, FileDescriptorHandle Wake) EpollWithWake()
    {
        var epoll = EpollCreate1(EPOLL_CLOEXEC);
        if (epoll < 0)
        {
            throw new IOException($"epoll_create1 failed: {Describe(Marshal.GetLastPInvokeError())}");
        }

        var epollHandle = new FileDescriptorHandle(epoll);
        var wake = EventFd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            epollHandle.Dispose();
            throw new IOException($"eventfd failed: {Describe(errno)}");
        }

        return (epollHandle, new FileDescriptorHandle(wake));
    }

    /// <summary>epoll_ctl ADD of <paramref name="fd"/> for <paramref name="events"/>, with <paramref name="token"/> as
    /// its data; throws with the errno's text on failure.</summary>
    internal static void EpollAdd(int epfd, int fd, uint events, ulong token) => EpollChange(epfd, EPOLL_CTL_ADD, fd, events, token);

    /// <summary>epoll_ctl MOD: <paramref name="fd"/>'s interest becomes <paramref name="events"/>; throws on failure.</summary>
    internal static void EpollModify(int epfd, int fd, uint events, ulong token) => EpollChange(epfd, EPOLL_CTL_MOD, fd, events, token);

    /// <summary>The event mask of the <paramref name="index"/>th event epoll_wait filled in (at offset 0 either way).</summary>
    internal static unsafe uint EpollEvents(byte* events, int index) =>
        BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(events + (index * EpollEventSize), 4));

    private static unsafe void EpollChange(int epfd, int op, int fd, uint events, ulong token)
    {
        var ev = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(ev, 4), events);
        BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(ev + EpollEventDataOffset, 8), token);
        if (EpollCtl(epfd, op, fd, ev) != 0)
        {
            throw new IOException($"epoll_ctl {(op == EPOLL_CTL_ADD ? "ADD" : "MOD")} failed: {Describe(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>The data of the <paramref name="index"/>th event epoll_wait filled in.</summary>
    internal static unsafe ulong EpollToken(byte* events, int index) =>
        BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(events + (index * EpollEventSize) + EpollEventDataOffset, 8));
}
