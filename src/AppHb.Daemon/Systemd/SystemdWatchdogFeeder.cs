using AppHb.Core.Heartbeats;
using AppHb.Daemon.Loops;
using AppHb.Daemon.Status;
using AppHb.Linux.Timing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Systemd;

/// <summary>The systemd side of the daemon: READY=1 once the host has started (configuration loaded, socket bound,
/// watchdog owned, services started), WATCHDOG=1 at half of WatchdogSec= and only while the daemon proves healthy
/// (the same proof the hardware tickle needs), a one-line STATUS=, and STOPPING=1 on an orderly stop. systemd thus
/// watches apphbd the way apphbd watches its clients.</summary>
internal sealed class SystemdWatchdogFeeder : DedicatedThreadService
{
    private readonly SystemdNotifier _notifier;
    private readonly DaemonHealth _health;
    private readonly HeartbeatRegistry _registry;
    private readonly WatchdogTickler _tickler;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<SystemdWatchdogFeeder> _logger;
    private readonly PreciseWaiter _waiter = new();
    private CancellationTokenRegistration _started;
    private CancellationTokenRegistration _stopping;

    public SystemdWatchdogFeeder(SystemdNotifier notifier, DaemonHealth health, HeartbeatRegistry registry, WatchdogTickler tickler,
        IHostApplicationLifetime lifetime, ILogger<SystemdWatchdogFeeder> logger)
    {
        _notifier = notifier;
        _health = health;
        _registry = registry;
        _tickler = tickler;
        _lifetime = lifetime;
        _logger = logger;
    }

    protected override string ThreadName => "apphb-systemd";

    protected override void OnStarting()
    {
        // ApplicationStarted fires after every hosted service started: only then is the daemon ready.
        _started = _lifetime.ApplicationStarted.Register(() =>
        {
            _notifier.Notify(ServiceState.Ready, ServiceState.Status(Summary()));
            Log.SystemdReady(_logger, _notifier.WatchdogInterval?.TotalMilliseconds ?? 0);
        });
        _stopping = _lifetime.ApplicationStopping.Register(() => _notifier.Notify(ServiceState.Stopping, ServiceState.Status("stopping")));
    }

    protected override void Run()
    {
        if (!_notifier.IsEnabled)
        {
            return;
        }

        var interval = _notifier.WatchdogInterval is { } usec ? usec / 2 : TimeSpan.FromSeconds(5);
        while (!IsStopping)
        {
            if (_waiter.Wait(interval) || IsStopping)
            {
                continue;
            }

            var states = new List<ServiceState> { ServiceState.Status(Summary()) };
            // Withheld when the loops have not proved alive within the interval: systemd then restarts us.
            if (_notifier.WatchdogInterval is not null && _health.Age <= interval)
            {
                states.Add(ServiceState.Watchdog);
            }

            _notifier.Notify([.. states]);
        }
    }

    protected override void Wake() => _waiter.Wake();

    protected override void DisposeResources()
    {
        _started.Dispose();
        _stopping.Dispose();
        _waiter.Dispose();
    }

    private string Summary()
    {
        var clients = _registry.Snapshot();
        var hung = clients.Count(c => c.State == ClientState.Hung);
        var device = _tickler.Device;
        var fed = _tickler.LastTickleAge is { } age ? $"fed {age.TotalMilliseconds:0} ms ago" : "not fed yet";
        return $"{clients.Count} client(s), {hung} hung; watchdog {device?.Backend ?? "-"} {device?.DevicePath ?? string.Empty} {fed}".Replace("  ", " ", StringComparison.Ordinal);
    }
}
