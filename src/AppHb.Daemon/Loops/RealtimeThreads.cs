using AppHb.Daemon.Configuration;
using AppHb.Linux.Accounts;
using AppHb.Linux.Realtime;
using Microsoft.Extensions.Logging;

namespace AppHb.Daemon.Loops;

/// <summary>Applies the configured realtime policy to the calling (critical) thread and says what it got.</summary>
internal static class RealtimeThreads
{
    public static string Apply(RealtimeOptions options, ILogger logger, string threadName)
    {
        if (options.Enabled)
        {
            var outcome = RealtimeScheduling.ApplyToCurrentThread(options.Policy, options.Priority);
            if (outcome.Applied)
            {
                Log.RealtimeApplied(logger, $"{threadName} runs {outcome.Description}");
            }
            else
            {
                Log.RealtimeRefused(logger, $"{threadName}: {outcome.Description}");
            }
        }

        return RealtimeScheduling.DescribeThread(UnixAccounts.CurrentThreadId);
    }
}
