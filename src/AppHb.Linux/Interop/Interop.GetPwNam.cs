using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    /// <summary>struct passwd (pwd.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Passwd
    {
        public nint Name;
        public nint Password;
        public uint Uid;
        public uint Gid;
        public nint Gecos;
        public nint Directory;
        public nint Shell;
    }

    [LibraryImport(Libc, EntryPoint = "getpwnam_r", StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int GetPwNamR(string name, Passwd* passwd, byte* buffer, nuint bufferSize, Passwd** result);

    [LibraryImport(Libc, EntryPoint = "getpwuid_r")]
    internal static unsafe partial int GetPwUidR(uint uid, Passwd* passwd, byte* buffer, nuint bufferSize, Passwd** result);
}
