using AppHb.Replication.Apply;
using AppHb.Replication.Capture;
using AppHb.Replication.Transfer;

namespace AppHb.Replication.Tests;

/// <summary>Replication connections from a pump's sender to a replica over loopback TCP, one after the other until
/// disposed, as apphbd's link reconnects: a repair or a journal restart past a lagging peer ends one.</summary>
internal sealed class Replicating : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task _running = Task.CompletedTask;

    /// <param name="ended">Told why each connection ended (the sender's reason), as apphbd logs it.</param>
    public static Replicating Start(CapturePump pump, string replica, byte[] key, string state, Action<string>? ended = null)
    {
        var replicating = new Replicating();
        var stop = replicating._stop.Token;
        replicating._running = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await using var connection = await Connected.OpenAsync(key, key);
                using var stopping = CancellationTokenSource.CreateLinkedTokenSource(stop);
                var sending = pump.Sender.RunAsync(connection.Sender, stopping.Token);
                var receiving = new ReplicationReceiver(new CutApplier(replica, state)).RunAsync(connection.Receiver, stopping.Token);
                await Task.WhenAny(sending, receiving);
                await stopping.CancelAsync();
                try
                {
                    await Task.WhenAll(sending, receiving);
                }
                catch (Exception e) when (e is OperationCanceledException or ReplicationRefusedException or IOException)
                {
                }

                if (sending.Exception?.InnerException is ReplicationRefusedException refused)
                {
                    lock (replicating._stop)
                    {
                        ended?.Invoke(refused.Message);
                    }
                }
            }
        });
        return replicating;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _running;
        _stop.Dispose();
    }
}
