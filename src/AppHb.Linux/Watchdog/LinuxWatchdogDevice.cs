using System.Runtime.InteropServices;
using System.Text;

namespace AppHb.Linux.Watchdog;

/// <summary>A kernel watchdog driver through /dev/watchdogN, per Documentation/watchdog/watchdog-api.rst
/// (https://www.kernel.org/doc/Documentation/watchdog/watchdog-api.rst). Opening arms it; only one process may hold it.</summary>
public sealed class LinuxWatchdogDevice : WatchdogDevice
{
    private readonly Interop.FileDescriptorHandle _fd;
    private readonly WatchdogFlags _support;
    private bool _disarmed;

    private LinuxWatchdogDevice(Interop.FileDescriptorHandle fd, string path, string identity, WatchdogFlags support,
        TimeSpan timeout, WatchdogFlags bootStatus)
    {
        _fd = fd;
        DevicePath = path;
        Identity = identity;
        _support = support;
        Timeout = timeout;
        BootStatus = bootStatus;
    }

    public override string Backend => "linux";

    public override string DevicePath { get; }

    public override string Identity { get; }

    public override TimeSpan Timeout { get; }

    public override WatchdogFlags BootStatus { get; }

    /// <summary>What the driver supports (WDIOC_GETSUPPORT options).</summary>
    public WatchdogFlags Support => _support;

    public override unsafe TimeSpan? TimeLeft
    {
        get
        {
            int seconds;
            return Interop.Ioctl(_fd.Fd, WatchdogUapi.GetTimeLeft, &seconds) == 0 ? TimeSpan.FromSeconds(seconds) : null;
        }
    }

    /// <summary>Opens and arms the device, programs the timeout, and reads the boot status.</summary>
    public static unsafe LinuxWatchdogDevice Open(string path, TimeSpan? timeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var raw = Interop.Open(path, Interop.O_WRONLY | Interop.O_CLOEXEC);
        if (raw < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new WatchdogUnavailableException(DescribeOpenFailure(path, errno));
        }

        var fd = new Interop.FileDescriptorHandle(raw);
        WatchdogUapi.WatchdogInfo info;
        if (Interop.Ioctl(raw, WatchdogUapi.GetSupport, &info) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            fd.Dispose();
            throw new WatchdogUnavailableException(
                $"{path} is not a watchdog device: WDIOC_GETSUPPORT failed with {Interop.Describe(errno)} (errno {errno})");
        }

        var support = (WatchdogFlags)info.Options;
        var identity = Encoding.ASCII.GetString(new ReadOnlySpan<byte>(info.Identity, 32)).TrimEnd('\0').Trim();
        var device = new LinuxWatchdogDevice(fd, path, identity, support, ReadTimeout(raw, timeout, support, out var notes),
            ReadBootStatus(raw));
        foreach (var note in notes)
        {
            device.AddNote(note);
        }

        // Some drivers start disabled after open until told otherwise; those that do not support it say EINVAL.
        var enable = WatchdogUapi.OptionEnableCard;
        _ = Interop.Ioctl(raw, WatchdogUapi.SetOptions, &enable);
        return device;
    }

    public override unsafe void Keepalive()
    {
        int dummy = 0;
        if (Interop.Ioctl(_fd.Fd, WatchdogUapi.Keepalive, &dummy) == 0)
        {
            return;
        }

        // Every driver accepts a write as a ping, even those without WDIOF_KEEPALIVEPING.
        byte ping = 0;
        if (Interop.Write(_fd.Fd, &ping, 1) != 1)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{DevicePath}: keepalive failed: {Interop.Describe(errno)} (errno {errno})");
        }
    }

    public override unsafe void Disarm()
    {
        if (_disarmed)
        {
            return;
        }

        // The magic close: 'V' as the last byte written before close disarms a WDIOF_MAGICCLOSE driver.
        byte magic = (byte)'V';
        _ = Interop.Write(_fd.Fd, &magic, 1);
        var disable = WatchdogUapi.OptionDisableCard;
        _ = Interop.Ioctl(_fd.Fd, WatchdogUapi.SetOptions, &disable);
        _disarmed = true;
        _fd.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        // Closing without the magic character leaves the timer running: a crash resets the board, by design.
        if (disposing)
        {
            _fd.Dispose();
        }

        base.Dispose(disposing);
    }

    private static unsafe TimeSpan ReadTimeout(int fd, TimeSpan? requested, WatchdogFlags support, out List<string> notes)
    {
        notes = [];
        if (requested is { } wanted)
        {
            var seconds = (int)Math.Ceiling(wanted.TotalSeconds);
            if ((support & WatchdogFlags.SetTimeout) == 0)
            {
                notes.Add($"the driver cannot change its timeout (no WDIOF_SETTIMEOUT); keeping its own");
            }
            else if (Interop.Ioctl(fd, WatchdogUapi.SetTimeout, &seconds) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                notes.Add($"WDIOC_SETTIMEOUT {Math.Ceiling(wanted.TotalSeconds)} s refused: {Interop.Describe(errno)}; keeping the driver's timeout");
            }
            else if (seconds != (int)Math.Ceiling(wanted.TotalSeconds))
            {
                notes.Add($"the driver rounded the timeout from {Math.Ceiling(wanted.TotalSeconds)} s to {seconds} s");
            }
        }

        int actual;
        if (Interop.Ioctl(fd, WatchdogUapi.GetTimeout, &actual) == 0 && actual > 0)
        {
            return TimeSpan.FromSeconds(actual);
        }

        notes.Add("the driver does not report its timeout (WDIOC_GETTIMEOUT); assuming the requested one");
        return requested ?? TimeSpan.FromSeconds(60);
    }

    private static unsafe WatchdogFlags ReadBootStatus(int fd)
    {
        int status;
        return Interop.Ioctl(fd, WatchdogUapi.GetBootStatus, &status) == 0 ? (WatchdogFlags)(uint)status : WatchdogFlags.None;
    }

    private static string DescribeOpenFailure(string path, int errno) => errno switch
    {
        Interop.Errno.EBUSY => DescribeBusy(path),
        Interop.Errno.ENOENT => $"{path} does not exist: no watchdog driver is loaded (for example i6300esb, iTCO_wdt, or softdog for testing)",
        Interop.Errno.EACCES or Interop.Errno.EPERM => $"{path}: permission denied; apphbd must run as root or with access to the device",
        _ => $"cannot open {path}: {Interop.Describe(errno)} (errno {errno})",
    };

    private static string DescribeBusy(string path)
    {
        var holders = WatchdogHolders.Find(path);
        if (holders.Any(h => h.Pid == 1))
        {
            return $"{path} is busy: systemd (PID 1) owns it through RuntimeWatchdogSec. Either set watchdog.backend: none "
                + "and let systemd watch apphbd through WatchdogSec=, or set RuntimeWatchdogSec=0 in /etc/systemd/system.conf "
                + "so that apphbd can own the device";
        }

        return holders.Count > 0
            ? $"{path} is busy: held by {string.Join(", ", holders.Select(h => $"{h.Command} (pid {h.Pid})"))}; only one process may own a watchdog"
            : $"{path} is busy: another process owns it (only one may); check with 'fuser {path}'";
    }
}

/// <summary>Who has a watchdog device open, found by reading /proc/PID/fd links.</summary>
public static class WatchdogHolders
{
    public static IReadOnlyList<(int Pid, string Command)> Find(string devicePath)
    {
        ArgumentNullException.ThrowIfNull(devicePath);
        // /dev/watchdog is the legacy alias of the first watchdog, /dev/watchdog0; holding either makes both busy.
        var aliases = new HashSet<string>(StringComparer.Ordinal) { devicePath };
        if (devicePath is "/dev/watchdog" or "/dev/watchdog0")
        {
            aliases.Add("/dev/watchdog");
            aliases.Add("/dev/watchdog0");
        }

        var holders = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                foreach (var link in Directory.EnumerateFileSystemEntries(Path.Combine(dir, "fd")))
                {
                    var target = new FileInfo(link).LinkTarget;
                    if (target is not null && aliases.Contains(target))
                    {
                        holders.Add((pid, File.ReadAllText(Path.Combine(dir, "comm")).Trim()));
                        break;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process exited or hides its descriptors; it cannot be named.
            }
        }

        return holders;
    }
}
