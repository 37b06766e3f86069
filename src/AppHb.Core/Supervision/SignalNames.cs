namespace AppHb.Core.Supervision;

/// <summary>Signal numbers by name. The numbers are the Linux ABI's; x86-64 and arm64 agree on all of these
/// (<c>include/uapi/asm-generic/signal.h</c>). Data, not a call: the supervisor's decisions name the signals they send.</summary>
public static class SignalNames
{
    private static readonly (string Name, int Number)[] Known =
    [
        ("HUP", 1), ("INT", 2), ("QUIT", 3), ("ILL", 4), ("TRAP", 5), ("ABRT", 6), ("BUS", 7), ("FPE", 8), ("KILL", 9),
        ("USR1", 10), ("SEGV", 11), ("USR2", 12), ("PIPE", 13), ("ALRM", 14), ("TERM", 15), ("CHLD", 17), ("CONT", 18),
        ("STOP", 19), ("TSTP", 20), ("WINCH", 28), ("PWR", 30),
    ];

    public const int SIGHUP = 1;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;

    /// <summary>TERM, SIGTERM or 15.</summary>
    public static bool TryParse(string text, out int signal)
    {
        ArgumentNullException.ThrowIfNull(text);
        var name = text.StartsWith("SIG", StringComparison.OrdinalIgnoreCase) ? text[3..] : text;
        foreach (var (known, number) in Known)
        {
            if (string.Equals(known, name, StringComparison.OrdinalIgnoreCase))
            {
                signal = number;
                return true;
            }
        }

        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out signal) && signal is > 0 and < 65;
    }

    /// <summary>SIGTERM for 15; the number itself for a signal without a name here.</summary>
    public static string Name(int signal)
    {
        foreach (var (known, number) in Known)
        {
            if (number == signal)
            {
                return "SIG" + known;
            }
        }

        return signal.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
