using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AppHb.Linux.Gpio;

/// <summary>The GPIO character device v2 uAPI, mirroring include/uapi/linux/gpio.h
/// (https://github.com/torvalds/linux/blob/master/include/uapi/linux/gpio.h). A test compiles that header with cc and
/// checks these sizes, offsets and ioctl numbers.</summary>
internal static class GpioUapi
{
    internal const int LinesMax = 64;
    internal const int NumAttributesMax = 10;
    internal const int MaxNameSize = 32;

    internal const ulong FlagUsed = 1UL << 0;
    internal const ulong FlagActiveLow = 1UL << 1;
    internal const ulong FlagInput = 1UL << 2;
    internal const ulong FlagOutput = 1UL << 3;

    internal const uint AttributeIdFlags = 1;
    internal const uint AttributeIdOutputValues = 2;
    internal const uint AttributeIdDebounce = 3;

    internal const char IoctlBase = (char)0xB4;

    internal static readonly nuint GetChipInfo = Interop.IoctlNumber(Interop.IocRead, IoctlBase, 0x01, Marshal.SizeOf<ChipInfo>());
    internal static readonly nuint GetLine = Interop.IoctlNumber(Interop.IocRead | Interop.IocWrite, IoctlBase, 0x07, Marshal.SizeOf<LineRequest>());
    internal static readonly nuint LineSetValues = Interop.IoctlNumber(Interop.IocRead | Interop.IocWrite, IoctlBase, 0x0F, Marshal.SizeOf<LineValues>());
    internal static readonly nuint LineGetValues = Interop.IoctlNumber(Interop.IocRead | Interop.IocWrite, IoctlBase, 0x0E, Marshal.SizeOf<LineValues>());

    /// <summary>struct gpiochip_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct ChipInfo
    {
        public fixed byte Name[MaxNameSize];
        public fixed byte Label[MaxNameSize];
        public uint Lines;
    }

    /// <summary>struct gpio_v2_line_attribute: id, padding, then a union of flags / values / debounce.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct LineAttribute
    {
        public uint Id;
        public uint Padding;
        public ulong Value;
    }

    /// <summary>struct gpio_v2_line_config_attribute.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct LineConfigAttribute
    {
        public LineAttribute Attribute;
        public ulong Mask;
    }

    [InlineArray(NumAttributesMax)]
    internal struct LineConfigAttributes
    {
        private LineConfigAttribute _element;
    }

    /// <summary>struct gpio_v2_line_config.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct LineConfig
    {
        public ulong Flags;
        public uint NumAttributes;
        public fixed uint Padding[5];
        public LineConfigAttributes Attributes;
    }

    /// <summary>struct gpio_v2_line_request.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct LineRequest
    {
        public fixed uint Offsets[LinesMax];
        public fixed byte Consumer[MaxNameSize];
        public LineConfig Config;
        public uint NumLines;
        public uint EventBufferSize;
        public fixed uint Padding[5];
        public int Fd;
    }

    /// <summary>struct gpio_v2_line_values.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct LineValues
    {
        public ulong Bits;
        public ulong Mask;
    }
}
