using AppHb.Core.Scheduling;
using AppHb.Daemon.Configuration;
using AppHb.Linux.Timing;
using AppHb.Linux.Watchdog;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Loops;

/// <summary>Feeds the level-0 watchdog from one dedicated thread, and only while the daemon proves healthy (its
/// deadline loop and thread pool ran within the last period). It measures how late it wakes, like Kestrel's
/// Heartbeat. An orderly stop disarms the device; a crash or a hang leaves it armed, and the node resets.</summary>
internal sealed class WatchdogTickler : DedicatedThreadService
{
    private readonly WatchdogOptions _options;
    private readonly DaemonHealth _health;
    private readonly TimeProvider _time;
    private readonly RealtimeOptions _realtime;
    private readonly ILogger<WatchdogTickler> _logger;
    private readonly Func<WatchdogSettings, WatchdogDevice> _open;
    private readonly PreciseWaiter _waiter = new();
    private WatchdogTickleGate? _gate;
    private string? _stopFeedingReason;

    public WatchdogTickler(ApphbdOptions options, DaemonHealth health, TimeProvider time, ILogger<WatchdogTickler> logger)
        : this(options, health, time, logger, WatchdogDevice.Create)
    {
    }

    /// <param name="open">Opens the device (tests pass a recording one).</param>
    internal WatchdogTickler(ApphbdOptions options, DaemonHealth health, TimeProvider time, ILogger<WatchdogTickler> logger, Func<WatchdogSettings, WatchdogDevice> open)
    {
        _options = options.Watchdog;
        _realtime = options.Realtime;
        _health = health;
        _time = time;
        _logger = logger;
        _open = open;
    }

    public WatchdogDevice? Device => _gate?.Device;

    public TimeSpan Period => _options.Period;

    public long Tickles => _gate?.Tickles ?? 0;

    public long Withheld => _gate?.Withheld ?? 0;

    public TimeSpan? LastTickleAge => _gate?.LastTickleAge;

    protected override string ThreadName => "apphb-tickle";

    /// <summary>Opens the device: a failure here stops the daemon from starting.</summary>
    protected override void OnStarting()
    {
        WatchdogDevice device;
        try
        {
            device = _open(_options.Device);
        }
        catch (WatchdogUnavailableException e)
        {
            Log.WatchdogUnavailable(_logger, e.Message);
            throw;
        }

        _gate = new WatchdogTickleGate(device, _health, _options.Period, _time, _logger);
        if (_stopFeedingReason is { } reason)
        {
            _gate.StopFeeding(reason);
        }

        Log.WatchdogOpened(_logger, device.Backend, device.DevicePath ?? "-", device.Identity ?? "-", device.Timeout.TotalSeconds, _options.Period.TotalMilliseconds);
        foreach (var note in device.Notes)
        {
            Log.WatchdogNote(_logger, note);
        }

        if (device.LastBootByWatchdog)
        {
            Log.WatchdogCausedLastBoot(_logger, device.BootStatus.ToString());
        }

        if (device.Timeout < _options.Period * 2)
        {
            Log.WatchdogNote(_logger, $"the device's timeout {device.Timeout.TotalSeconds} s is less than two tickle periods ({_options.Period.TotalSeconds} s each)");
        }
    }

    /// <summary>Last resort (reboot escalation): never feed again, so the hardware resets the node.</summary>
    public void StopFeeding(string reason)
    {
        _stopFeedingReason = reason;
        _gate?.StopFeeding(reason);
    }

    protected override void Wake() => _waiter.Wake();

    /// <summary>Orderly stop: the magic close, unless feeding was stopped on purpose (reboot escalation).</summary>
    protected override void OnStopped()
    {
        if (_gate is { FeedingStopped: false } gate)
        {
            gate.Device.Disarm();
            Log.WatchdogDisarmed(_logger);
        }
    }

    /// <summary>Closing without the magic character leaves the hardware armed: a daemon torn down without an orderly
    /// stop resets the node, as a crash must.</summary>
    protected override void DisposeResources()
    {
        _gate?.Device.Dispose();
        _waiter.Dispose();
    }

    /// <summary>The timing: one <see cref="WatchdogTickleGate.OnTick"/> per period, on schedule, recording how late each
    /// wake-up was.</summary>
    protected override void Run()
    {
        _health.TickleScheduling = RealtimeThreads.Apply(_realtime, _logger, "watchdog tickle loop");
        var timestamps = new Timestamps(_time);
        var period = timestamps.ToTicks(_options.Period);
        var gate = _gate!;
        var next = _time.GetTimestamp();
        while (!IsStopping)
        {
            gate.OnTick();
            next += period;
            var now = _time.GetTimestamp();
            if (next < now)
            {
                // Far behind (suspended, starved): restart the schedule rather than bursting tickles.
                Log.TickleLate(_logger, timestamps.ToTimeSpan(now - next).TotalMilliseconds);
                next = now;
            }

            if (_waiter.Wait(timestamps.ToTimeSpan(next - now)))
            {
                continue;
            }

            var lateness = _time.GetElapsedTime(next);
            _health.TickleLateness.Record(lateness);
            _health.TickleObserved?.Invoke(lateness);
        }
    }
}
