using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    internal const short POLLIN = 0x1;

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // ppoll rather than poll: its timeout is a timespec, so the deadline and tickle loops wake to the microsecond
    // instead of rounding up to the next millisecond.
    [LibraryImport(Libc, EntryPoint = "ppoll", SetLastError = true)]
    internal static unsafe partial int PPoll(PollFd* fds, nuint count, TimeSpec* timeout, void* signalMask);
}
