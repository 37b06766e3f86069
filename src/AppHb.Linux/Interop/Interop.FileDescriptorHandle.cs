using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>An owned file descriptor, closed exactly once.</summary>
    internal sealed class FileDescriptorHandle : SafeHandle
    {
        public FileDescriptorHandle() : base(-1, ownsHandle: true) { }

        public FileDescriptorHandle(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

        public override bool IsInvalid => handle == -1;

        public int Fd => (int)handle;

        protected override bool ReleaseHandle() => Interop.Close((int)handle) == 0;
    }
}
