using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Link(string existing, string created);
}
