namespace AppHb.Linux;

internal static partial class Interop
{
    internal const string Libc = "libc";
}
