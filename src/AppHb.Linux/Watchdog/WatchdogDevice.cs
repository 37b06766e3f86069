namespace AppHb.Linux.Watchdog;

/// <summary>The level-0 watchdog: something that resets the board unless fed. One driver per kind of hardware,
/// chosen by <see cref="Create"/> the way System.Device.Gpio's GpioDriver picks its Unix driver.</summary>
public abstract class WatchdogDevice : IDisposable
{
    /// <summary>none, linux or gpio.</summary>
    public abstract string Backend { get; }

    /// <summary>The device node, if any.</summary>
    public virtual string? DevicePath => null;

    /// <summary>The driver's identity string (watchdog_info.identity), if known.</summary>
    public virtual string? Identity => null;

    /// <summary>How long the hardware waits for a tickle before it resets the board.</summary>
    public abstract TimeSpan Timeout { get; }

    /// <summary>What the hardware says about the last boot.</summary>
    public virtual WatchdogFlags BootStatus => WatchdogFlags.None;

    /// <summary>Whether the last reset was the watchdog's doing.</summary>
    public bool LastBootByWatchdog => (BootStatus & WatchdogFlags.CardReset) != 0;

    /// <summary>Things the driver wants the operator to know (unsupported options, rounding of the timeout).</summary>
    public IReadOnlyList<string> Notes => _notes;

    private readonly List<string> _notes = [];

    /// <summary>Time left before the reset, if the driver can tell.</summary>
    public virtual TimeSpan? TimeLeft => null;

    /// <summary>Feeds the watchdog. Called only from the tickle thread.</summary>
    /// <exception cref="IOException">The device refused the tickle.</exception>
    public abstract void Keepalive();

    /// <summary>Orderly stop: disarms the hardware (magic close) so the board is not reset.
    /// Without this, disposing leaves the watchdog running and the board resets after <see cref="Timeout"/>:
    /// exactly what a crash must do.</summary>
    public abstract void Disarm();

    protected void AddNote(string note) => _notes.Add(note);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }

    /// <summary>Opens the watchdog named by <paramref name="settings"/>.</summary>
    /// <exception cref="WatchdogUnavailableException">The device cannot be owned; the message says why and what to do.</exception>
    public static WatchdogDevice Create(WatchdogSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Backend switch
        {
            WatchdogBackend.None => new NullWatchdogDevice(settings.Timeout ?? TimeSpan.FromSeconds(60)),
            WatchdogBackend.Linux => LinuxWatchdogDevice.Open(settings.Device, settings.Timeout),
            WatchdogBackend.Gpio => GpioWatchdogDevice.Open(settings.Gpio
                ?? throw new WatchdogUnavailableException("the gpio watchdog backend needs gpio settings (chip and line)"),
                settings.Timeout ?? TimeSpan.FromSeconds(1.6)),
            _ => throw new WatchdogUnavailableException($"unknown watchdog backend {settings.Backend}"),
        };
    }
}

public enum WatchdogBackend
{
    None,
    Linux,
    Gpio,
}

/// <summary>Which watchdog to open and how.</summary>
/// <param name="Timeout">linux: the timeout to program (null keeps the driver's); gpio: the chip's own timeout, for
/// status and validation; none: what the loop pretends.</param>
public sealed record WatchdogSettings(WatchdogBackend Backend, string Device, TimeSpan? Timeout, GpioWatchdogSettings? Gpio = null);

/// <summary>An external watchdog chip whose WDI input is toggled on a GPIO line.</summary>
/// <param name="Chip">/dev/gpiochipN.</param>
/// <param name="Line">Line offset of WDI on that chip.</param>
/// <param name="ActiveLow">WDI wired active low.</param>
/// <param name="EnableLine">Optional line that enables the chip (asserted while apphbd runs, released on orderly stop).</param>
public sealed record GpioWatchdogSettings(string Chip, uint Line, bool ActiveLow, uint? EnableLine, bool EnableActiveLow);

/// <summary>The watchdog cannot be owned by apphbd.</summary>
public sealed class WatchdogUnavailableException : Exception
{
    public WatchdogUnavailableException() : base("watchdog unavailable") { }

    public WatchdogUnavailableException(string message) : base(message) { }

    public WatchdogUnavailableException(string message, Exception innerException) : base(message, innerException) { }
}
