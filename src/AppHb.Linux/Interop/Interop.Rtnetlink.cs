namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>linux/netlink.h and linux/rtnetlink.h, linux/if_addr.h: what address requests are made of.</summary>
    internal static class Netlink
    {
        internal const int HeaderSize = 16;            // struct nlmsghdr
        internal const int AddressMessageSize = 8;     // struct ifaddrmsg
        internal const int AttributeHeaderSize = 4;    // struct rtattr
        internal const ushort Error = 2;               // NLMSG_ERROR
        internal const ushort Done = 3;                // NLMSG_DONE
        internal const ushort NewAddress = 20;         // RTM_NEWADDR
        internal const ushort DeleteAddress = 21;      // RTM_DELADDR
        internal const ushort GetAddress = 22;         // RTM_GETADDR
        internal const ushort Request = 0x1;           // NLM_F_REQUEST
        internal const ushort Ack = 0x4;               // NLM_F_ACK
        internal const ushort Exclusive = 0x200;       // NLM_F_EXCL
        internal const ushort Create = 0x400;          // NLM_F_CREATE
        internal const ushort Dump = 0x300;            // NLM_F_DUMP
        internal const ushort AttributeAddress = 1;    // IFA_ADDRESS
        internal const ushort AttributeLocal = 2;      // IFA_LOCAL
        internal const ushort AttributeFlags = 8;      // IFA_FLAGS
        internal const uint FlagNoDad = 0x02;          // IFA_F_NODAD
        internal const int EADDRNOTAVAIL = 99;
        internal const int EEXIST = 17;
    }
}
