using AppHb.Linux.Gpio;

namespace AppHb.Linux.Watchdog;

/// <summary>An external watchdog chip (TPS3823, MAX6369, STWD100 and the like) whose WDI input must see an edge
/// before its timeout: each tickle toggles the line. An optional enable line arms the chip while apphbd runs; on an
/// orderly stop it is released, which is this backend's magic close. Without one, the chip cannot be disarmed and
/// will reset the board after any stop: the daemon says so at start.</summary>
public sealed class GpioWatchdogDevice : WatchdogDevice
{
    private const int WdiIndex = 0;
    private const int EnableIndex = 1;
    private readonly GpioOutputLines _lines;
    private readonly bool _hasEnable;
    private bool _level;

    private GpioWatchdogDevice(GpioOutputLines lines, bool hasEnable, TimeSpan timeout, string device)
    {
        _lines = lines;
        _hasEnable = hasEnable;
        Timeout = timeout;
        DevicePath = device;
        if (!hasEnable)
        {
            AddNote("no enable line is configured: the external watchdog cannot be disarmed, so even an orderly stop resets the board after its timeout");
        }
    }

    public override string Backend => "gpio";

    public override string DevicePath { get; }

    public override string Identity => "external watchdog on GPIO";

    public override TimeSpan Timeout { get; }

    public static GpioWatchdogDevice Open(GpioWatchdogSettings settings, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var lines = new List<GpioOutputLine> { new(settings.Line, settings.ActiveLow, InitialValue: false) };
        if (settings.EnableLine is { } enable)
        {
            lines.Add(new GpioOutputLine(enable, settings.EnableActiveLow, InitialValue: true));
        }

        try
        {
            var requested = GpioOutputLines.Request(settings.Chip, "apphbd-watchdog", lines);
            return new GpioWatchdogDevice(requested, settings.EnableLine.HasValue, timeout, $"{settings.Chip} line {settings.Line}");
        }
        catch (IOException e)
        {
            throw new WatchdogUnavailableException(e.Message, e);
        }
    }

    public override void Keepalive()
    {
        _level = !_level;
        _lines.Set(WdiIndex, _level);
    }

    public override void Disarm()
    {
        if (_hasEnable)
        {
            _lines.Set(EnableIndex, false);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _lines.Dispose();
        }

        base.Dispose(disposing);
    }
}
