using System.Runtime.InteropServices;

namespace AppHb.Linux.Timing;

/// <summary>A wait with a nanosecond timeout that another thread can cut short: <c>ppoll</c> on an <c>eventfd</c>.
/// Managed waits round timeouts up to whole milliseconds, which alone would eat half of the 2 ms budget between a
/// deadline and its hung event.</summary>
public sealed class PreciseWaiter : IDisposable
{
    private readonly Interop.FileDescriptorHandle _eventFd;

    public PreciseWaiter()
    {
        var fd = Interop.EventFd(0, Interop.EFD_NONBLOCK | Interop.EFD_CLOEXEC);
        if (fd < 0)
        {
            throw new IOException($"eventfd failed: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }

        _eventFd = new Interop.FileDescriptorHandle(fd);
    }

    /// <summary>Makes the current or next <see cref="Wait"/> return at once. Safe from any thread, never blocks.</summary>
    public unsafe void Wake()
    {
        var success = false;
        _eventFd.DangerousAddRef(ref success);
        try
        {
            ulong one = 1;
            _ = Interop.Write(_eventFd.Fd, &one, sizeof(ulong));
        }
        finally
        {
            if (success)
            {
                _eventFd.DangerousRelease();
            }
        }
    }

    /// <summary>Blocks the calling thread until <paramref name="timeout"/> passes or <see cref="Wake"/> is called.</summary>
    /// <returns>true when woken, false when the timeout passed.</returns>
    public unsafe bool Wait(TimeSpan timeout)
    {
        var success = false;
        _eventFd.DangerousAddRef(ref success);
        try
        {
            var fd = _eventFd.Fd;
            var deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(Math.Max(0, timeout.Ticks) * (System.Diagnostics.Stopwatch.Frequency / (double)TimeSpan.TicksPerSecond));
            while (true)
            {
                var poll = new Interop.PollFd { Fd = fd, Events = Interop.POLLIN };
                var remaining = timeout == Timeout.InfiniteTimeSpan
                    ? Timeout.InfiniteTimeSpan
                    : System.Diagnostics.Stopwatch.GetElapsedTime(System.Diagnostics.Stopwatch.GetTimestamp(), deadline);
                var ticks = Math.Max(0, remaining.Ticks);
                var spec = new Interop.TimeSpec
                {
                    Seconds = ticks / TimeSpan.TicksPerSecond,
                    Nanoseconds = ticks % TimeSpan.TicksPerSecond * 100,
                };
                var rc = Interop.PPoll(&poll, 1, timeout == Timeout.InfiniteTimeSpan ? null : &spec, null);
                if (rc > 0)
                {
                    ulong value;
                    _ = Interop.Read(fd, &value, sizeof(ulong));
                    return true;
                }

                // A signal (EINTR, e.g. the runtime's own) is not the end of the wait: keep waiting for the rest.
                if (rc < 0 && Marshal.GetLastPInvokeError() == Interop.Errno.EINTR)
                {
                    continue;
                }

                return false;
            }
        }
        finally
        {
            if (success)
            {
                _eventFd.DangerousRelease();
            }
        }
    }

    public void Dispose() => _eventFd.Dispose();
}
