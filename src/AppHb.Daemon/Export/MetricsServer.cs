using System.Buffers;
using System.Net;
using System.Text;
using AppHb.Daemon.Configuration;
using AppHb.Export.Metrics;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace AppHb.Daemon.Export;

/// <summary>The Prometheus scrape endpoint: GET /metrics on Kestrel, on the configured address (loopback by default).
/// Prometheus text 0.0.4, or OpenMetrics when the scraper's Accept header asks for it.
/// <para>Kestrel is used bare (KestrelServer with a one-method IHttpApplication) rather than through WebApplication:
/// a second host, DI container and routing cost 14 MB of resident memory for one URL (measured).</para>
/// <para>Scrapes are served one at a time (each refreshes the families from one status snapshot) on the thread pool,
/// never on apphbd's realtime threads.</para></summary>
internal sealed class MetricsServer(ApphbdOptions options, CollectorRegistry registry, StatusMetrics families, ObservedMetrics observed, ILoggerFactory loggers)
    : IHostedService, IAsyncDisposable, IHttpApplication<IFeatureCollection>
{
    private static readonly byte[] NotFound = Encoding.UTF8.GetBytes("apphbd serves GET /metrics only\n");
    private readonly SemaphoreSlim _scrape = new(1, 1);
    // Reused by every scrape (they are serialized): an exposition of hundreds of KB allocated per scrape lands on the
    // large object heap, and the full collections that follow pause the realtime threads (measured: tickle p99 5 ms).
    private readonly ArrayBufferWriter<byte> _exposition = new(256 * 1024);
    private KestrelServer? _server;

    /// <summary>The families refreshed at each scrape.</summary>
    public StatusMetrics Families => families;

    /// <summary>The bound endpoint (with the real port when 0 was configured).</summary>
    public IPEndPoint? Endpoint { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Metrics.Listen is not { } listen)
        {
            return;
        }

        var services = new ServiceCollection().AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance).BuildServiceProvider();
        var kestrel = new KestrelServerOptions { AddServerHeader = false, ApplicationServices = services };
        kestrel.Limits.MaxConcurrentConnections = 64;
        kestrel.Listen(listen);
        _server = new KestrelServer(Options.Create(kestrel), new SocketTransportFactory(Options.Create(new SocketTransportOptions { IOQueueCount = 1 }), NullLoggerFactory.Instance), NullLoggerFactory.Instance);
        await _server.StartAsync(this, cancellationToken);
        var address = _server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        Endpoint = address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri) ? new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port) : listen;
        Log.MetricsListening(loggers.CreateLogger("apphbd"), $"http://{Endpoint}/metrics");
    }

    public IFeatureCollection CreateContext(IFeatureCollection contextFeatures) => contextFeatures;

    public async Task ProcessRequestAsync(IFeatureCollection context)
    {
        var request = context.GetRequiredFeature<IHttpRequestFeature>();
        var response = context.GetRequiredFeature<IHttpResponseFeature>();
        var body = context.GetRequiredFeature<IHttpResponseBodyFeature>();
        if (request.Path != "/metrics" || !HttpMethods.IsGet(request.Method))
        {
            response.StatusCode = request.Path == "/metrics" ? StatusCodes.Status405MethodNotAllowed : StatusCodes.Status404NotFound;
            response.Headers.ContentType = "text/plain; charset=utf-8";
            await body.Writer.WriteAsync(NotFound);
            return;
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var openMetrics = TextSerializer.PrefersOpenMetrics(request.Headers.Accept.ToString());
        await _scrape.WaitAsync();
        try
        {
            _exposition.ResetWrittenCount();
            TextSerializer.Serialize(registry.Collect(), openMetrics, _exposition);
            response.StatusCode = StatusCodes.Status200OK;
            response.Headers.ContentType = openMetrics ? TextSerializer.OpenMetricsContentType : TextSerializer.PrometheusContentType;
            response.Headers.ContentLength = _exposition.WrittenCount;
            // Timed once the body is in Kestrel's pipe, not when the flush's completion gets a pool thread back: on a
            // busy machine that continuation can wait milliseconds after the scraper already has every byte.
            var write = body.Writer.WriteAsync(_exposition.WrittenMemory);
            observed.Scrape(System.Diagnostics.Stopwatch.GetElapsedTime(started));
            await write;
        }
        finally
        {
            _scrape.Release();
        }
    }

    public void DisposeContext(IFeatureCollection context, Exception? exception)
    {
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            await _server.StopAsync(cancellationToken);
        }
    }

    public ValueTask DisposeAsync()
    {
        _server?.Dispose();
        _server = null;
        _scrape.Dispose();
        return ValueTask.CompletedTask;
    }
}
