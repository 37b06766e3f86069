using AppHb.Client;
using AppHb.Daemon.Clients;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Demo;

/// <summary>apphbd --demo: two real clients over the real socket. "steady" beats on time; "flaky" beats for a while,
/// then stalls long enough to go warn and hung, then resumes and recovers, in a loop.</summary>
internal sealed partial class DemoClients : BackgroundService
{
    private readonly ClientSocketServer _server;
    private readonly ILogger<DemoClients> _logger;

    public DemoClients(ClientSocketServer server, ILogger<DemoClients> logger)
    {
        _server = server;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var steady = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = _server.SocketPath,
            Name = "steady",
            Interval = TimeSpan.FromSeconds(2),
            WarnTime = TimeSpan.FromSeconds(1),
            AutoBeatPeriod = TimeSpan.FromMilliseconds(500),
        });
        await using var flaky = new HeartbeatClient(new HeartbeatClientOptions
        {
            SocketPath = _server.SocketPath,
            Name = "flaky",
            Interval = TimeSpan.FromSeconds(2),
            WarnTime = TimeSpan.FromSeconds(1),
        });
        try
        {
            await steady.RegisterAsync(stoppingToken);
            await flaky.RegisterAsync(stoppingToken);
            LogHint(_logger, _server.SocketPath);
            while (!stoppingToken.IsCancellationRequested)
            {
                for (var i = 0; i < 8; i++)
                {
                    await flaky.BeatAsync(stoppingToken);
                    await Task.Delay(TimeSpan.FromMilliseconds(500), stoppingToken);
                }

                LogStall(_logger);
                await Task.Delay(TimeSpan.FromSeconds(3), stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(900, LogLevel.Information, "Demo: clients 'steady' and 'flaky' registered. Watch them: dotnet run --project src/AppHb.Cli -- --socket {SocketPath} status")]
    private static partial void LogHint(ILogger logger, string socketPath);

    [LoggerMessage(901, LogLevel.Information, "Demo: 'flaky' stops beating for 3 s (warn after 1 s, hung after 2 s)")]
    private static partial void LogStall(ILogger logger);
}
