namespace AppHb.Linux.Watchdog;

/// <summary>No hardware: the same tickle loop runs, with its timing visible, but nothing resets the board.
/// For development, the demo, and boxes where systemd owns the hardware watchdog.</summary>
public sealed class NullWatchdogDevice : WatchdogDevice
{
    public NullWatchdogDevice(TimeSpan timeout) => Timeout = timeout;

    public override string Backend => "none";

    public override TimeSpan Timeout { get; }

    public override void Keepalive() { }

    public override void Disarm() { }
}
