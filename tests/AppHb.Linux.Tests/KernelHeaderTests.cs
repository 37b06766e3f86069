using System.Diagnostics;
using System.Runtime.InteropServices;
using AppHb.Linux.Gpio;
using AppHb.Linux.Watchdog;
using AppHb.Testing;

namespace AppHb.Linux.Tests;

/// <summary>Compiles linux/watchdog.h and linux/gpio.h with cc and checks that every ioctl number, struct size and
/// field offset our interop declares is what the kernel headers say.</summary>
public sealed class KernelHeaderTests : IDisposable
{
    private const string Program = """
        #define _GNU_SOURCE
        #include <stdio.h>
        #include <stddef.h>
        #include <sys/socket.h>
        #include <linux/sched.h>
        #include <linux/watchdog.h>
        #include <linux/gpio.h>
        #include <sys/epoll.h>
        #include <errno.h>
        #include <fcntl.h>
        #include <sys/stat.h>
        #include <net/if.h>
        #include <linux/netlink.h>
        #include <linux/rtnetlink.h>
        #include <linux/if_addr.h>
        #include <linux/if_packet.h>
        #include <linux/if_ether.h>
        #include <linux/sockios.h>
        #define P(name, value) printf("%s=%llu\n", name, (unsigned long long)(value))
        int main(void) {
            P("WDIOC_GETSUPPORT", WDIOC_GETSUPPORT);
            P("WDIOC_GETSTATUS", WDIOC_GETSTATUS);
            P("WDIOC_GETBOOTSTATUS", WDIOC_GETBOOTSTATUS);
            P("WDIOC_SETOPTIONS", WDIOC_SETOPTIONS);
            P("WDIOC_KEEPALIVE", WDIOC_KEEPALIVE);
            P("WDIOC_SETTIMEOUT", WDIOC_SETTIMEOUT);
            P("WDIOC_GETTIMEOUT", WDIOC_GETTIMEOUT);
            P("WDIOC_GETTIMELEFT", WDIOC_GETTIMELEFT);
            P("WDIOS_DISABLECARD", WDIOS_DISABLECARD);
            P("WDIOS_ENABLECARD", WDIOS_ENABLECARD);
            P("WDIOF_CARDRESET", WDIOF_CARDRESET);
            P("WDIOF_SETTIMEOUT", WDIOF_SETTIMEOUT);
            P("WDIOF_MAGICCLOSE", WDIOF_MAGICCLOSE);
            P("WDIOF_KEEPALIVEPING", WDIOF_KEEPALIVEPING);
            P("WDIOF_OVERHEAT", WDIOF_OVERHEAT);
            P("WDIOF_PRETIMEOUT", WDIOF_PRETIMEOUT);
            P("WDIOF_ALARMONLY", WDIOF_ALARMONLY);
            P("sizeof(watchdog_info)", sizeof(struct watchdog_info));
            P("offsetof(watchdog_info.identity)", offsetof(struct watchdog_info, identity));
            P("GPIO_GET_CHIPINFO_IOCTL", GPIO_GET_CHIPINFO_IOCTL);
            P("GPIO_V2_GET_LINE_IOCTL", GPIO_V2_GET_LINE_IOCTL);
            P("GPIO_V2_LINE_SET_VALUES_IOCTL", GPIO_V2_LINE_SET_VALUES_IOCTL);
            P("GPIO_V2_LINE_GET_VALUES_IOCTL", GPIO_V2_LINE_GET_VALUES_IOCTL);
            P("GPIO_V2_LINES_MAX", GPIO_V2_LINES_MAX);
            P("GPIO_V2_LINE_NUM_ATTRS_MAX", GPIO_V2_LINE_NUM_ATTRS_MAX);
            P("GPIO_V2_LINE_FLAG_ACTIVE_LOW", GPIO_V2_LINE_FLAG_ACTIVE_LOW);
            P("GPIO_V2_LINE_FLAG_OUTPUT", GPIO_V2_LINE_FLAG_OUTPUT);
            P("GPIO_V2_LINE_ATTR_ID_FLAGS", GPIO_V2_LINE_ATTR_ID_FLAGS);
            P("GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES", GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES);
            P("sizeof(gpiochip_info)", sizeof(struct gpiochip_info));
            P("sizeof(gpio_v2_line_attribute)", sizeof(struct gpio_v2_line_attribute));
            P("sizeof(gpio_v2_line_config_attribute)", sizeof(struct gpio_v2_line_config_attribute));
            P("sizeof(gpio_v2_line_config)", sizeof(struct gpio_v2_line_config));
            P("offsetof(gpio_v2_line_config.attrs)", offsetof(struct gpio_v2_line_config, attrs));
            P("sizeof(gpio_v2_line_request)", sizeof(struct gpio_v2_line_request));
            P("offsetof(gpio_v2_line_request.consumer)", offsetof(struct gpio_v2_line_request, consumer));
            P("offsetof(gpio_v2_line_request.config)", offsetof(struct gpio_v2_line_request, config));
            P("offsetof(gpio_v2_line_request.num_lines)", offsetof(struct gpio_v2_line_request, num_lines));
            P("offsetof(gpio_v2_line_request.fd)", offsetof(struct gpio_v2_line_request, fd));
            P("sizeof(gpio_v2_line_values)", sizeof(struct gpio_v2_line_values));
            P("sizeof(epoll_event)", sizeof(struct epoll_event));
            P("offsetof(epoll_event.data)", offsetof(struct epoll_event, data));
            P("EPOLLIN", EPOLLIN);
            P("EPOLL_CTL_ADD", EPOLL_CTL_ADD);
            P("EPOLL_CTL_DEL", EPOLL_CTL_DEL);
            P("EPOLL_CLOEXEC", EPOLL_CLOEXEC);
            P("SCHED_OTHER", SCHED_NORMAL);
            P("SCHED_FIFO", SCHED_FIFO);
            P("SCHED_RR", SCHED_RR);
            P("SCHED_RESET_ON_FORK", SCHED_RESET_ON_FORK);
            P("SOL_SOCKET", SOL_SOCKET);
            P("SO_PEERCRED", SO_PEERCRED);
            P("sizeof(ucred)", sizeof(struct ucred));
            P("MSG_PEEK", MSG_PEEK);
            P("MSG_DONTWAIT", MSG_DONTWAIT);
            P("MSG_NOSIGNAL", MSG_NOSIGNAL);
            P("EPOLLRDHUP", EPOLLRDHUP);
            P("EPOLLOUT", EPOLLOUT);
            P("EPOLLERR", EPOLLERR);
            P("EPOLLHUP", EPOLLHUP);
            P("EPOLL_CTL_MOD", EPOLL_CTL_MOD);
            P("SOCK_NONBLOCK", SOCK_NONBLOCK);
            P("SOCK_CLOEXEC", SOCK_CLOEXEC);
            P("ENFILE", ENFILE);
            P("EMFILE", EMFILE);
            P("ENOBUFS", ENOBUFS);
            P("AT_FDCWD", (unsigned int)AT_FDCWD);
            P("STATX_MODE", STATX_MODE);
            P("STATX_UID", STATX_UID);
            P("sizeof(statx)", sizeof(struct statx));
            P("offsetof(statx, stx_uid)", offsetof(struct statx, stx_uid));
            P("offsetof(statx, stx_gid)", offsetof(struct statx, stx_gid));
            P("offsetof(statx, stx_mode)", offsetof(struct statx, stx_mode));
            P("offsetof(statx, stx_nlink)", offsetof(struct statx, stx_nlink));
            P("offsetof(statx, stx_dev_major)", offsetof(struct statx, stx_dev_major));
            P("offsetof(statx, stx_dev_minor)", offsetof(struct statx, stx_dev_minor));
            P("STATX_NLINK", STATX_NLINK);
            P("AT_SYMLINK_NOFOLLOW", AT_SYMLINK_NOFOLLOW);
            P("STATX_TYPE", STATX_TYPE);
            P("STATX_GID", STATX_GID);
            P("STATX_MTIME", STATX_MTIME);
            P("offsetof(statx, stx_mtime)", offsetof(struct statx, stx_mtime));
            P("offsetof(statx_timestamp, tv_nsec)", offsetof(struct statx_timestamp, tv_nsec));
            P("UTIME_OMIT", UTIME_OMIT);
            P("sizeof(timespec)", sizeof(struct timespec));
            P("ENOTDIR", ENOTDIR);
            P("offsetof(ucred.uid)", offsetof(struct ucred, uid));
            P("offsetof(ucred.gid)", offsetof(struct ucred, gid));
            P("AF_INET", AF_INET);
            P("AF_INET6", AF_INET6);
            P("AF_NETLINK", AF_NETLINK);
            P("AF_PACKET", AF_PACKET);
            P("SOCK_DGRAM", SOCK_DGRAM);
            P("SOCK_RAW", SOCK_RAW);
            P("NETLINK_ROUTE", NETLINK_ROUTE);
            P("ETH_P_ARP", ETH_P_ARP);
            P("SIOCGIFHWADDR", SIOCGIFHWADDR);
            P("SIOCGIFINDEX", SIOCGIFINDEX);
            P("sizeof(ifreq)", sizeof(struct ifreq));
            P("IFNAMSIZ", IFNAMSIZ);
            P("offsetof(ifreq.ifr_ifindex)", offsetof(struct ifreq, ifr_ifindex));
            P("sizeof(sockaddr_ll)", sizeof(struct sockaddr_ll));
            P("sizeof(sockaddr_nl)", sizeof(struct sockaddr_nl));
            P("sizeof(nlmsghdr)", sizeof(struct nlmsghdr));
            P("sizeof(ifaddrmsg)", sizeof(struct ifaddrmsg));
            P("sizeof(rtattr)", sizeof(struct rtattr));
            P("NLMSG_ERROR", NLMSG_ERROR);
            P("NLMSG_DONE", NLMSG_DONE);
            P("RTM_NEWADDR", RTM_NEWADDR);
            P("RTM_DELADDR", RTM_DELADDR);
            P("RTM_GETADDR", RTM_GETADDR);
            P("NLM_F_REQUEST", NLM_F_REQUEST);
            P("NLM_F_ACK", NLM_F_ACK);
            P("NLM_F_EXCL", NLM_F_EXCL);
            P("NLM_F_CREATE", NLM_F_CREATE);
            P("NLM_F_DUMP", NLM_F_DUMP);
            P("IFA_ADDRESS", IFA_ADDRESS);
            P("IFA_LOCAL", IFA_LOCAL);
            P("IFA_FLAGS", IFA_FLAGS);
            P("IFA_F_NODAD", IFA_F_NODAD);
            P("EADDRNOTAVAIL", EADDRNOTAVAIL);
            P("EEXIST", EEXIST);
            P("ENODEV", ENODEV);
            return 0;
        }
        """;

    private readonly TempDirectory _directory = new();

    public static TheoryData<string, ulong> Ours => new()
    {
        { "WDIOC_GETSUPPORT", WatchdogUapi.GetSupport },
        { "WDIOC_GETSTATUS", WatchdogUapi.GetStatus },
        { "WDIOC_GETBOOTSTATUS", WatchdogUapi.GetBootStatus },
        { "WDIOC_SETOPTIONS", WatchdogUapi.SetOptions },
        { "WDIOC_KEEPALIVE", WatchdogUapi.Keepalive },
        { "WDIOC_SETTIMEOUT", WatchdogUapi.SetTimeout },
        { "WDIOC_GETTIMEOUT", WatchdogUapi.GetTimeout },
        { "WDIOC_GETTIMELEFT", WatchdogUapi.GetTimeLeft },
        { "WDIOS_DISABLECARD", (ulong)WatchdogUapi.OptionDisableCard },
        { "WDIOS_ENABLECARD", (ulong)WatchdogUapi.OptionEnableCard },
        { "WDIOF_CARDRESET", (ulong)WatchdogFlags.CardReset },
        { "WDIOF_SETTIMEOUT", (ulong)WatchdogFlags.SetTimeout },
        { "WDIOF_MAGICCLOSE", (ulong)WatchdogFlags.MagicClose },
        { "WDIOF_KEEPALIVEPING", (ulong)WatchdogFlags.KeepalivePing },
        { "WDIOF_OVERHEAT", (ulong)WatchdogFlags.Overheat },
        { "WDIOF_PRETIMEOUT", (ulong)WatchdogFlags.PreTimeout },
        { "WDIOF_ALARMONLY", (ulong)WatchdogFlags.AlarmOnly },
        { "sizeof(watchdog_info)", (ulong)Marshal.SizeOf<WatchdogUapi.WatchdogInfo>() },
        { "offsetof(watchdog_info.identity)", (ulong)Marshal.OffsetOf<WatchdogUapi.WatchdogInfo>("Identity") },
        { "GPIO_GET_CHIPINFO_IOCTL", GpioUapi.GetChipInfo },
        { "GPIO_V2_GET_LINE_IOCTL", GpioUapi.GetLine },
        { "GPIO_V2_LINE_SET_VALUES_IOCTL", GpioUapi.LineSetValues },
        { "GPIO_V2_LINE_GET_VALUES_IOCTL", GpioUapi.LineGetValues },
        { "GPIO_V2_LINES_MAX", GpioUapi.LinesMax },
        { "GPIO_V2_LINE_NUM_ATTRS_MAX", GpioUapi.NumAttributesMax },
        { "GPIO_V2_LINE_FLAG_ACTIVE_LOW", GpioUapi.FlagActiveLow },
        { "GPIO_V2_LINE_FLAG_OUTPUT", GpioUapi.FlagOutput },
        { "GPIO_V2_LINE_ATTR_ID_FLAGS", GpioUapi.AttributeIdFlags },
        { "GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES", GpioUapi.AttributeIdOutputValues },
        { "sizeof(gpiochip_info)", (ulong)Marshal.SizeOf<GpioUapi.ChipInfo>() },
        { "sizeof(gpio_v2_line_attribute)", (ulong)Marshal.SizeOf<GpioUapi.LineAttribute>() },
        { "sizeof(gpio_v2_line_config_attribute)", (ulong)Marshal.SizeOf<GpioUapi.LineConfigAttribute>() },
        { "sizeof(gpio_v2_line_config)", (ulong)Marshal.SizeOf<GpioUapi.LineConfig>() },
        { "offsetof(gpio_v2_line_config.attrs)", (ulong)Marshal.OffsetOf<GpioUapi.LineConfig>("Attributes") },
        { "sizeof(gpio_v2_line_request)", (ulong)Marshal.SizeOf<GpioUapi.LineRequest>() },
        { "offsetof(gpio_v2_line_request.consumer)", (ulong)Marshal.OffsetOf<GpioUapi.LineRequest>("Consumer") },
        { "offsetof(gpio_v2_line_request.config)", (ulong)Marshal.OffsetOf<GpioUapi.LineRequest>("Config") },
        { "offsetof(gpio_v2_line_request.num_lines)", (ulong)Marshal.OffsetOf<GpioUapi.LineRequest>("NumLines") },
        { "offsetof(gpio_v2_line_request.fd)", (ulong)Marshal.OffsetOf<GpioUapi.LineRequest>("Fd") },
        { "sizeof(gpio_v2_line_values)", (ulong)Marshal.SizeOf<GpioUapi.LineValues>() },
        { "sizeof(epoll_event)", (ulong)Interop.EpollEventSize },
        { "offsetof(epoll_event.data)", (ulong)Interop.EpollEventDataOffset },
        { "EPOLLIN", Interop.EPOLLIN },
        { "EPOLL_CTL_ADD", (ulong)Interop.EPOLL_CTL_ADD },
        { "EPOLL_CTL_DEL", (ulong)Interop.EPOLL_CTL_DEL },
        { "EPOLL_CLOEXEC", (ulong)Interop.EPOLL_CLOEXEC },
        { "SCHED_OTHER", (ulong)Interop.SCHED_OTHER },
        { "SCHED_FIFO", (ulong)Interop.SCHED_FIFO },
        { "SCHED_RR", (ulong)Interop.SCHED_RR },
        { "SCHED_RESET_ON_FORK", (ulong)Interop.SCHED_RESET_ON_FORK },
        { "SOL_SOCKET", (ulong)Interop.SOL_SOCKET },
        { "SO_PEERCRED", (ulong)Interop.SO_PEERCRED },
        { "sizeof(ucred)", (ulong)Marshal.SizeOf<Interop.UCred>() },
        { "MSG_PEEK", (ulong)Interop.MSG_PEEK },
        { "MSG_DONTWAIT", (ulong)Interop.MSG_DONTWAIT },
        { "MSG_NOSIGNAL", (ulong)Interop.MSG_NOSIGNAL },
        { "EPOLLRDHUP", Interop.EPOLLRDHUP },
        { "EPOLLOUT", Interop.EPOLLOUT },
        { "EPOLLERR", Interop.EPOLLERR },
        { "EPOLLHUP", Interop.EPOLLHUP },
        { "EPOLL_CTL_MOD", (ulong)Interop.EPOLL_CTL_MOD },
        { "SOCK_NONBLOCK", (ulong)Interop.SOCK_NONBLOCK },
        { "SOCK_CLOEXEC", (ulong)Interop.SOCK_CLOEXEC },
        { "ENFILE", (ulong)Interop.Errno.ENFILE },
        { "EMFILE", (ulong)Interop.Errno.EMFILE },
        { "ENOBUFS", (ulong)Interop.Errno.ENOBUFS },
        { "AT_FDCWD", unchecked((uint)Interop.AT_FDCWD) },
        { "STATX_MODE", Interop.STATX_MODE },
        { "STATX_UID", Interop.STATX_UID },
        { "sizeof(statx)", (ulong)Interop.StatxSize },
        { "offsetof(statx, stx_uid)", (ulong)Interop.StatxUidOffset },
        { "offsetof(statx, stx_gid)", (ulong)Interop.StatxGidOffset },
        { "offsetof(statx, stx_mode)", (ulong)Interop.StatxModeOffset },
        { "offsetof(statx, stx_nlink)", (ulong)Interop.StatxNlinkOffset },
        { "offsetof(statx, stx_dev_major)", (ulong)Interop.StatxDevMajorOffset },
        { "offsetof(statx, stx_dev_minor)", (ulong)Interop.StatxDevMinorOffset },
        { "STATX_NLINK", Interop.STATX_NLINK },
        { "AT_SYMLINK_NOFOLLOW", (ulong)Interop.AT_SYMLINK_NOFOLLOW },
        { "STATX_TYPE", Interop.STATX_TYPE },
        { "STATX_GID", Interop.STATX_GID },
        { "STATX_MTIME", Interop.STATX_MTIME },
        { "offsetof(statx, stx_mtime)", (ulong)Interop.StatxMtimeOffset },
        { "offsetof(statx_timestamp, tv_nsec)", 8 },
        { "UTIME_OMIT", (ulong)Interop.UTIME_OMIT },
        { "sizeof(timespec)", (ulong)Marshal.SizeOf<Interop.TimeSpec>() },
        { "ENOTDIR", (ulong)Interop.Errno.ENOTDIR },
        { "offsetof(ucred.uid)", (ulong)Marshal.OffsetOf<Interop.UCred>("Uid") },
        { "offsetof(ucred.gid)", (ulong)Marshal.OffsetOf<Interop.UCred>("Gid") },
        { "AF_INET", (ulong)Interop.AF_INET },
        { "AF_INET6", (ulong)Interop.AF_INET6 },
        { "AF_NETLINK", (ulong)Interop.AF_NETLINK },
        { "AF_PACKET", (ulong)Interop.AF_PACKET },
        { "SOCK_DGRAM", (ulong)Interop.SOCK_DGRAM },
        { "SOCK_RAW", (ulong)Interop.SOCK_RAW },
        { "NETLINK_ROUTE", (ulong)Interop.NETLINK_ROUTE },
        { "ETH_P_ARP", (ulong)Interop.ETH_P_ARP },
        { "SIOCGIFHWADDR", (ulong)Interop.SIOCGIFHWADDR },
        { "SIOCGIFINDEX", (ulong)Interop.SIOCGIFINDEX },
        { "sizeof(ifreq)", (ulong)Interop.IfReqSize },
        { "IFNAMSIZ", (ulong)Interop.IfNameSize },
        { "offsetof(ifreq.ifr_ifindex)", (ulong)Interop.IfNameSize },
        { "sizeof(sockaddr_ll)", (ulong)Interop.SockAddrLinkLayerSize },
        { "sizeof(sockaddr_nl)", (ulong)Interop.SockAddrNetlinkSize },
        { "sizeof(nlmsghdr)", (ulong)Interop.Netlink.HeaderSize },
        { "sizeof(ifaddrmsg)", (ulong)Interop.Netlink.AddressMessageSize },
        { "sizeof(rtattr)", (ulong)Interop.Netlink.AttributeHeaderSize },
        { "NLMSG_ERROR", (ulong)Interop.Netlink.Error },
        { "NLMSG_DONE", (ulong)Interop.Netlink.Done },
        { "RTM_NEWADDR", (ulong)Interop.Netlink.NewAddress },
        { "RTM_DELADDR", (ulong)Interop.Netlink.DeleteAddress },
        { "RTM_GETADDR", (ulong)Interop.Netlink.GetAddress },
        { "NLM_F_REQUEST", (ulong)Interop.Netlink.Request },
        { "NLM_F_ACK", (ulong)Interop.Netlink.Ack },
        { "NLM_F_EXCL", (ulong)Interop.Netlink.Exclusive },
        { "NLM_F_CREATE", (ulong)Interop.Netlink.Create },
        { "NLM_F_DUMP", (ulong)Interop.Netlink.Dump },
        { "IFA_ADDRESS", (ulong)Interop.Netlink.AttributeAddress },
        { "IFA_LOCAL", (ulong)Interop.Netlink.AttributeLocal },
        { "IFA_FLAGS", (ulong)Interop.Netlink.AttributeFlags },
        { "IFA_F_NODAD", (ulong)Interop.Netlink.FlagNoDad },
        { "EADDRNOTAVAIL", (ulong)Interop.Netlink.EADDRNOTAVAIL },
        { "EEXIST", (ulong)Interop.Netlink.EEXIST },
        { "ENODEV", (ulong)Interop.Errno.ENODEV },
    };

    [Theory]
    [MemberData(nameof(Ours))]
    public void Interop_matches_the_kernel_header(string name, ulong ours)
    {
        var kernel = KernelValues.Value;
        Assert.True(kernel.ContainsKey(name), $"the C probe did not print {name}");
        Assert.Equal(kernel[name], ours);
    }

    [Fact]
    public void Every_value_the_probe_prints_is_checked()
    {
        var checkedNames = Ours.Select(row => row.Data.Item1).ToHashSet();
        Assert.DoesNotContain(KernelValues.Value.Keys, k => !checkedNames.Contains(k));
    }

    private static readonly Lazy<Dictionary<string, ulong>> KernelValues = new(CompileAndRun);

    private static Dictionary<string, ulong> CompileAndRun()
    {
        var dir = Directory.CreateTempSubdirectory("apphb-uapi-").FullName;
        var source = Path.Combine(dir, "probe.c");
        var binary = Path.Combine(dir, "probe");
        File.WriteAllText(source, Program);
        Run("cc", $"-o {binary} {source}");
        var output = Run(binary, string.Empty);
        Directory.Delete(dir, recursive: true);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('='))
            .ToDictionary(parts => parts[0], parts => ulong.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string Run(string file, string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{file} {arguments} failed: {error}");
        return output;
    }

    public void Dispose() => _directory.Dispose();
}
