namespace AppHb.Core.Supervision;

/// <summary>One sd_notify(3) datagram from a service: newline-separated <c>VAR=value</c> assignments, of which the
/// supervisor acts on READY=1, WATCHDOG=1, WATCHDOG=trigger, STOPPING=1 and STATUS=.</summary>
public readonly record struct NotifyMessage(bool Ready, bool Watchdog, bool WatchdogTrigger, bool Stopping, string? Status)
{
    /// <summary>Parses a datagram's text; unknown assignments are ignored, as systemd does.</summary>
    public static NotifyMessage Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        bool ready = false, watchdog = false, trigger = false, stopping = false;
        string? status = null;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            switch (line)
            {
                case "READY=1":
                    ready = true;
                    break;
                case "WATCHDOG=1":
                    watchdog = true;
                    break;
                case "WATCHDOG=trigger":
                    trigger = true;
                    break;
                case "STOPPING=1":
                    stopping = true;
                    break;
                default:
                    if (line.StartsWith("STATUS=", StringComparison.Ordinal))
                    {
                        status = line[7..];
                    }

                    break;
            }
        }

        return new NotifyMessage(ready, watchdog, trigger, stopping, status);
    }
}
