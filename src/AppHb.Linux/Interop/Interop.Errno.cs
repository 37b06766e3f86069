namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>errno values used by name (asm-generic/errno-base.h, errno.h).</summary>
    internal static class Errno
    {
        internal const int EPERM = 1;
        internal const int ENOENT = 2;
        internal const int ENOTDIR = 20;
        internal const int EINTR = 4;
        internal const int EIO = 5;
        internal const int EAGAIN = 11;
        internal const int ENOMEM = 12;
        internal const int ENFILE = 23;
        internal const int EMFILE = 24;
        internal const int ENOBUFS = 105;
        internal const int ENOSPC = 28;
        internal const int EACCES = 13;
        internal const int EBUSY = 16;
        internal const int ENODEV = 19;
        internal const int EINVAL = 22;
        internal const int ENOTTY = 25;
        internal const int EOPNOTSUPP = 95;
    }

    /// <summary>strerror-like text for an errno, via the runtime's own table.</summary>
    internal static string Describe(int errno) => new System.ComponentModel.Win32Exception(errno).Message;
}
