using System.Diagnostics;

namespace AppHb.Testing;

/// <summary>Waits for something a test cannot be told about (a datagram counted, a process gone), by looking again
/// every few milliseconds until it holds or a bound passes. Returns whether it held; the test asserts what it needs.</summary>
public static class Polling
{
    public static Task<bool> UntilAsync(Func<bool> condition, TimeSpan bound, CancellationToken cancellationToken) =>
        UntilAsync(() => Task.FromResult(condition()), bound, cancellationToken);

    public static async Task<bool> UntilAsync(Func<Task<bool>> condition, TimeSpan bound, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            if (waited.Elapsed >= bound)
            {
                return false;
            }

            await Task.Delay(10, cancellationToken);
        }

        return true;
    }
}
