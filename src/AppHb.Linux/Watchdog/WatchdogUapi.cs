using System.Runtime.InteropServices;

namespace AppHb.Linux.Watchdog;

/// <summary>The Linux watchdog uAPI, mirroring include/uapi/linux/watchdog.h
/// (https://github.com/torvalds/linux/blob/master/include/uapi/linux/watchdog.h). A test compiles that header with cc
/// and checks every number and the struct layout below against it.</summary>
internal static class WatchdogUapi
{
    internal const char IoctlBase = 'W';

    internal static readonly nuint GetSupport = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 0, Marshal.SizeOf<WatchdogInfo>());
    internal static readonly nuint GetStatus = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 1, sizeof(int));
    internal static readonly nuint GetBootStatus = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 2, sizeof(int));
    // SETOPTIONS and KEEPALIVE are declared _IOR in the header although they write; the number is what matters.
    internal static readonly nuint SetOptions = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 4, sizeof(int));
    internal static readonly nuint Keepalive = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 5, sizeof(int));
    internal static readonly nuint SetTimeout = Interop.IoctlNumber(Interop.IocRead | Interop.IocWrite, IoctlBase, 6, sizeof(int));
    internal static readonly nuint GetTimeout = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 7, sizeof(int));
    internal static readonly nuint GetTimeLeft = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 10, sizeof(int));

    internal const int OptionDisableCard = 0x0001;
    internal const int OptionEnableCard = 0x0002;

    /// <summary>struct watchdog_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct WatchdogInfo
    {
        public uint Options;
        public uint FirmwareVersion;
        public fixed byte Identity[32];
    }
}

/// <summary>WDIOF_* bits, as reported by WDIOC_GETSUPPORT (what the driver can do) and WDIOC_GETBOOTSTATUS /
/// WDIOC_GETSTATUS (what happened).</summary>
[Flags]
public enum WatchdogFlags : uint
{
    None = 0,
    Overheat = 0x0001,
    FanFault = 0x0002,
    External1 = 0x0004,
    External2 = 0x0008,
    PowerUnder = 0x0010,
    /// <summary>The card previously reset the CPU: the last boot was caused by the watchdog.</summary>
    CardReset = 0x0020,
    PowerOver = 0x0040,
    SetTimeout = 0x0080,
    MagicClose = 0x0100,
    PreTimeout = 0x0200,
    AlarmOnly = 0x0400,
    KeepalivePing = 0x8000,
}
