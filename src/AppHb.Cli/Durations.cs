using System.Globalization;

namespace AppHb.Cli;

/// <summary>Durations as written on the command line and in apphbd.yaml: 500ms, 10s, 2m, 1h.</summary>
internal static class Durations
{
    public static bool TryParse(string text, out TimeSpan value)
    {
        value = default;
        foreach (var (suffix, ms) in new (string, double)[] { ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000) })
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal) && !(suffix == "m" && text.EndsWith("ms", StringComparison.Ordinal))
                && double.TryParse(text[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                value = TimeSpan.FromMilliseconds(number * ms);
                return true;
            }
        }

        return false;
    }

    public static string Format(double milliseconds) => milliseconds switch
    {
        < 1 => $"{milliseconds:0.###}ms",
        < 10_000 => $"{milliseconds:0}ms",
        < 600_000 => $"{milliseconds / 1000:0.#}s",
        < 36_000_000 => $"{milliseconds / 60_000:0.#}m",
        _ => $"{milliseconds / 3_600_000:0.#}h",
    };
}
