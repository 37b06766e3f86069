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
    private readonly PreciseWaiter _waiter = new();
    private volatile string? _stopFeedingReason;
    private long _tickles;
    private long _withheld;
    private long _lastTickle = -1;

    public WatchdogTickler(ApphbdOptions options, DaemonHealth health, TimeProvider time, ILogger<WatchdogTickler> logger)
    {
        _options = options.Watchdog;
        _realtime = options.Realtime;
        _health = health;
        _time = time;
        _logger = logger;
    }

    public WatchdogDevice? Device { get; private set; }

    public TimeSpan Period => _options.Period;

    public long Tickles => Interlocked.Read(ref _tickles);

    public long Withheld => Interlocked.Read(ref _withheld);

    public TimeSpan? LastTickleAge => Interlocked.Read(ref _lastTickle) is var last and >= 0 ? _time.GetElapsedTime(last) : null;

    protected override string ThreadName => "apphb-tickle";

    /// <summary>Opens the device: a failure here stops the daemon from starting.</summary>
    protected override void OnStarting()
    {
        try
        {
            Device = WatchdogDevice.Create(_options.Device);
        }
        catch (WatchdogUnavailableException e)
        {
            Log.WatchdogUnavailable(_logger, e.Message);
            throw;
        }

        Log.WatchdogOpened(_logger, Device.Backend, Device.DevicePath ?? "-", Device.Identity ?? "-", Device.Timeout.TotalSeconds, _options.Period.TotalMilliseconds);
        foreach (var note in Device.Notes)
        {
            Log.WatchdogNote(_logger, note);
        }

        if (Device.LastBootByWatchdog)
        {
            Log.WatchdogCausedLastBoot(_logger, Device.BootStatus.ToString());
        }

        if (Device.Timeout < _options.Period * 2)
        {
            Log.WatchdogNote(_logger, $"the device's timeout {Device.Timeout.TotalSeconds} s is less than two tickle periods ({_options.Period.TotalSeconds} s each)");
        }
    }

    /// <summary>Last resort (reboot escalation): never feed again, so the hardware resets the node.</summary>
    public void StopFeeding(string reason) => _stopFeedingReason = reason;

    protected override void Wake() => _waiter.Wake();

    /// <summary>Orderly stop: the magic close, unless feeding was stopped on purpose (reboot escalation).</summary>
    protected override void OnStopped()
    {
        if (Device is not null && _stopFeedingReason is null)
        {
            Device.Disarm();
            Log.WatchdogDisarmed(_logger);
        }
    }

    /// <summary>Closing without the magic character leaves the hardware armed: a daemon torn down without an orderly
    /// stop resets the node, as a crash must.</summary>
    protected override void DisposeResources()
    {
        Device?.Dispose();
        _waiter.Dispose();
    }

    protected override void Run()
    {
        _health.TickleScheduling = RealtimeThreads.Apply(_realtime, _logger, "watchdog tickle loop");
        var timestamps = new Timestamps(_time);
        var period = timestamps.ToTicks(_options.Period);
        var device = Device!;
        var next = _time.GetTimestamp();
        var withholding = false;
        while (!IsStopping)
        {
            var age = _health.Age;
            if (age <= _options.Period && _stopFeedingReason is null)
            {
                try
                {
                    device.Keepalive();
                    Interlocked.Increment(ref _tickles);
                    Interlocked.Exchange(ref _lastTickle, _time.GetTimestamp());
                    if (withholding)
                    {
                        Log.TickleResumed(_logger, Withheld);
                        withholding = false;
                    }
                }
                catch (IOException e)
                {
                    Log.TickleFailed(_logger, e);
                }
            }
            else
            {
                Interlocked.Increment(ref _withheld);
                if (!withholding)
                {
                    Log.TickleWithheld(_logger, age.TotalMilliseconds, _options.Period.TotalMilliseconds, device.Timeout.TotalSeconds);
                    withholding = true;
                }
            }

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
