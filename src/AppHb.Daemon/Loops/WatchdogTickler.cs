using AppHb.Core.Scheduling;
using AppHb.Daemon.Configuration;
using AppHb.Linux.Timing;
using AppHb.Linux.Watchdog;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Loops;

/// <summary>Feeds the level-0 watchdog from one dedicated thread, and only while the daemon proves healthy (its
/// deadline loop and thread pool ran within the last period). It measures how late it wakes, like Kestrel's
/// Heartbeat. An orderly stop disarms the device; a crash or a hang leaves it armed, and the node resets.</summary>
internal sealed class WatchdogTickler : IHostedService, IDisposable
{
    private readonly WatchdogOptions _options;
    private readonly DaemonHealth _health;
    private readonly TimeProvider _time;
    private readonly RealtimeOptions _realtime;
    private readonly ILogger<WatchdogTickler> _logger;
    private readonly PreciseWaiter _waiter = new();
    private int _disposed;
    private int _stopped;
    private Thread? _thread;
    private volatile bool _stopping;
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

    /// <summary>Opens the device: a failure here stops the daemon from starting.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
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

        _thread = new Thread(Run) { Name = "apphb-tickle", IsBackground = true };
        _thread.Start();
        return Task.CompletedTask;
    }

    /// <summary>Last resort (reboot escalation): never feed again, so the hardware resets the node.</summary>
    public void StopFeeding(string reason) => _stopFeedingReason = reason;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        // Idempotent: the host may stop a service more than once (shutdown, then disposal paths).
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return Task.CompletedTask;
        }

        _stopping = true;
        _waiter.Wake();
        _thread?.Join();
        if (Device is not null && _stopFeedingReason is null)
        {
            Device.Disarm();
            Log.WatchdogDisarmed(_logger);
        }

        return Task.CompletedTask;
    }

    public void Dispose()
    {
        // Idempotent: the container disposes this once as a singleton and once as the hosted service it also is.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Stop the thread first; the device is closed without the magic character unless StopAsync disarmed it.
        _stopping = true;
        _waiter.Wake();
        _thread?.Join();
        Device?.Dispose();
        _waiter.Dispose();
    }

    private void Run()
    {
        _health.TickleScheduling = RealtimeThreads.Apply(_realtime, _logger, "watchdog tickle loop");
        var timestamps = new Timestamps(_time);
        var period = timestamps.ToTicks(_options.Period);
        var device = Device!;
        var next = _time.GetTimestamp();
        var withholding = false;
        while (!_stopping)
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

            _health.TickleLateness.Record(_time.GetElapsedTime(next));
        }
    }
}
