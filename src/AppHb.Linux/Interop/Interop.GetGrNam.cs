using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct Group
    {
        public nint Name;
        public nint Password;
        public uint Gid;
        public nint Members;
    }

    // getgrnam_r: reentrant, and goes through NSS like every other tool on the box.
    [LibraryImport(Libc, EntryPoint = "getgrnam_r", StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int GetGrNamR(string name, Group* group, byte* buffer, nuint bufferSize, Group** result);
}
