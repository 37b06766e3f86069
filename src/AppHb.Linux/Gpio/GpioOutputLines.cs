using System.Runtime.InteropServices;
using System.Text;

namespace AppHb.Linux.Gpio;

/// <summary>One output line to request: its offset on the chip, wiring polarity and initial logical value.</summary>
public readonly record struct GpioOutputLine(uint Offset, bool ActiveLow, bool InitialValue);

/// <summary>A set of output lines held on one chip through the v2 character device: like System.Device.Gpio's
/// LibGpiodV2 driver, but only the part a watchdog needs. Values are logical: the kernel applies active-low.</summary>
public sealed class GpioOutputLines : IDisposable
{
    private readonly Interop.FileDescriptorHandle _lines;

    private GpioOutputLines(Interop.FileDescriptorHandle lines, string chip, IReadOnlyList<GpioOutputLine> requested)
    {
        _lines = lines;
        Chip = chip;
        Lines = requested;
    }

    public string Chip { get; }

    public IReadOnlyList<GpioOutputLine> Lines { get; }

    /// <summary>Requests <paramref name="lines"/> as outputs on <paramref name="chipPath"/>, labelled <paramref name="consumer"/>.</summary>
    public static unsafe GpioOutputLines Request(string chipPath, string consumer, IReadOnlyList<GpioOutputLine> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        if (lines.Count is 0 or > GpioUapi.LinesMax)
        {
            throw new ArgumentOutOfRangeException(nameof(lines), lines.Count, $"between 1 and {GpioUapi.LinesMax} lines");
        }

        var chipFd = Interop.Open(chipPath, Interop.O_RDWR | Interop.O_CLOEXEC);
        if (chipFd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open GPIO chip {chipPath}: {Interop.Describe(errno)} (errno {errno})");
        }

        using var chip = new Interop.FileDescriptorHandle(chipFd);
        GpioUapi.ChipInfo info;
        if (Interop.Ioctl(chipFd, GpioUapi.GetChipInfo, &info) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{chipPath} is not a GPIO chip: GPIO_GET_CHIPINFO_IOCTL failed with {Interop.Describe(errno)}");
        }

        foreach (var line in lines)
        {
            if (line.Offset >= info.Lines)
            {
                throw new IOException($"{chipPath} has {info.Lines} lines; line {line.Offset} does not exist");
            }
        }

        var request = new GpioUapi.LineRequest { NumLines = (uint)lines.Count };
        var name = Encoding.ASCII.GetBytes(consumer);
        for (var i = 0; i < Math.Min(name.Length, GpioUapi.MaxNameSize - 1); i++)
        {
            request.Consumer[i] = name[i];
        }

        ulong initial = 0, activeLowMask = 0, all = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            request.Offsets[i] = lines[i].Offset;
            all |= 1UL << i;
            if (lines[i].InitialValue)
            {
                initial |= 1UL << i;
            }

            if (lines[i].ActiveLow)
            {
                activeLowMask |= 1UL << i;
            }
        }

        request.Config.Flags = GpioUapi.FlagOutput;
        var attributes = 0;
        if (activeLowMask != 0)
        {
            request.Config.Attributes[attributes++] = new GpioUapi.LineConfigAttribute
            {
                Attribute = new GpioUapi.LineAttribute { Id = GpioUapi.AttributeIdFlags, Value = GpioUapi.FlagOutput | GpioUapi.FlagActiveLow },
                Mask = activeLowMask,
            };
        }

        request.Config.Attributes[attributes++] = new GpioUapi.LineConfigAttribute
        {
            Attribute = new GpioUapi.LineAttribute { Id = GpioUapi.AttributeIdOutputValues, Value = initial },
            Mask = all,
        };
        request.Config.NumAttributes = (uint)attributes;

        if (Interop.Ioctl(chipFd, GpioUapi.GetLine, &request) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var hint = errno == Interop.Errno.EBUSY ? " (another consumer holds the line; see gpioinfo)" : string.Empty;
            throw new IOException($"cannot request lines {string.Join(",", lines.Select(l => l.Offset))} on {chipPath}: {Interop.Describe(errno)}{hint}");
        }

        return new GpioOutputLines(new Interop.FileDescriptorHandle(request.Fd), chipPath, lines.ToArray());
    }

    /// <summary>Sets the logical value of the line at <paramref name="index"/> in the request.</summary>
    public unsafe void Set(int index, bool value)
    {
        var values = new GpioUapi.LineValues { Bits = value ? 1UL << index : 0, Mask = 1UL << index };
        if (Interop.Ioctl(_lines.Fd, GpioUapi.LineSetValues, &values) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{Chip}: setting line {Lines[index].Offset} failed: {Interop.Describe(errno)}");
        }
    }

    /// <summary>Reads back the logical value of the line at <paramref name="index"/>.</summary>
    public unsafe bool Get(int index)
    {
        var values = new GpioUapi.LineValues { Mask = 1UL << index };
        if (Interop.Ioctl(_lines.Fd, GpioUapi.LineGetValues, &values) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{Chip}: reading line {Lines[index].Offset} failed: {Interop.Describe(errno)}");
        }

        return (values.Bits & (1UL << index)) != 0;
    }

    public void Dispose() => _lines.Dispose();
}
