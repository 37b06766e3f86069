using System.Buffers;
using System.Globalization;
using System.Text;

namespace AppHb.Export.Metrics;

/// <summary>Writes the exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0.0.
/// https://prometheus.io/docs/instrumenting/exposition_formats/ and https://openmetrics.io/.
/// <para>Straight to UTF-8: a scrape is thousands of lines of a few pre-rendered parts (the family name, a child's
/// label text, kept as bytes) and a number formatted in place, one buffer reservation per line; no text builder and
/// no encoding pass over hundreds of KB.</para></summary>
public static class TextSerializer
{
    public const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";
    public const string OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    // A sample's number takes at most 25 bytes ("-1.2345678901234567E-308"); the rest of the line is sized exactly.
    private const int MaxNumber = 32;

    /// <summary>OpenMetrics when the scraper's Accept header asks for it, else Prometheus text.</summary>
    public static bool PrefersOpenMetrics(string? accept) =>
        accept is not null && accept.Contains("application/openmetrics-text", StringComparison.OrdinalIgnoreCase);

    public static string Serialize(IReadOnlyList<Collector> collectors, bool openMetrics)
    {
        var output = new ArrayBufferWriter<byte>(4096);
        Serialize(collectors, openMetrics, output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    /// <summary>Appends the exposition to <paramref name="output"/>: an endpoint reuses one buffer across scrapes, so a
    /// scrape of hundreds of KB does not allocate on the large object heap (and the full collections that follow would
    /// pause apphbd's realtime threads too).</summary>
    public static void Serialize(IReadOnlyList<Collector> collectors, bool openMetrics, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(collectors);
        ArgumentNullException.ThrowIfNull(output);
        foreach (var collector in collectors)
        {
            var family = openMetrics ? CollectorRegistry.FamilyName(collector) : collector.Name;
            Write(output, $"# HELP {family} {EscapeHelp(collector.Help, openMetrics)}\n# TYPE {family} {TypeName(collector.Type)}\n");
            var name = collector.NameUtf8;
            var children = collector.Children();
            for (var c = 0; c < children.Count; c++)
            {
                var (_, labels, child) = children[c];
                switch (child)
                {
                    case Counter.Child counter:
                        Sample(output, name, [], labels, [], counter.Value);
                        break;
                    case Gauge.Child gauge:
                        Sample(output, name, [], labels, [], gauge.Value);
                        break;
                    case Histogram.Child histogram:
                        var bounds = ((Histogram)collector).BoundsUtf8;
                        var (cumulative, sum, count) = histogram.Snapshot();
                        for (var i = 0; i < cumulative.Length; i++)
                        {
                            Sample(output, name, "_bucket"u8, labels, i < bounds.Count ? bounds[i] : "+Inf"u8, cumulative[i]);
                        }

                        Sample(output, name, "_sum"u8, labels, [], sum);
                        Sample(output, name, "_count"u8, labels, [], count);
                        break;
                }
            }
        }

        if (openMetrics)
        {
            output.Write("# EOF\n"u8);
        }
    }

    private static string TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter",
        MetricType.Gauge => "gauge",
        _ => "histogram",
    };

    /// <summary>name="value",other="value" for a child's labels, escaped, as UTF-8; without the braces, so a histogram
    /// can add its le.</summary>
    internal static byte[] RenderLabels(IReadOnlyList<string> labelNames, IReadOnlyList<string> labels)
    {
        var text = new StringBuilder();
        for (var i = 0; i < labels.Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            text.Append(labelNames[i]).Append("=\"").Append(EscapeLabel(labels[i])).Append('"');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>One line: name, suffix, {labels,le="…"}, the value. One reservation of the buffer, sized for the
    /// longest number.</summary>
    private static void Sample(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> labels, ReadOnlySpan<byte> le, double value)
    {
        var span = output.GetSpan(name.Length + suffix.Length + labels.Length + le.Length + 9 + MaxNumber);
        var at = 0;
        Put(span, ref at, name);
        Put(span, ref at, suffix);
        if (labels.Length > 0 || le.Length > 0)
        {
            span[at++] = (byte)'{';
            Put(span, ref at, labels);
            if (le.Length > 0)
            {
                Put(span, ref at, labels.Length > 0 ? ",le=\""u8 : "le=\""u8);
                Put(span, ref at, le);
                span[at++] = (byte)'"';
            }

            span[at++] = (byte)'}';
        }

        span[at++] = (byte)' ';
        at += FormatValue(value, span[at..]);
        span[at++] = (byte)'\n';
        output.Advance(at);
    }

    private static void Put(Span<byte> span, ref int at, ReadOnlySpan<byte> part)
    {
        part.CopyTo(span[at..]);
        at += part.Length;
    }

    private static int FormatValue(double value, Span<byte> destination)
    {
        int written;
        if (double.IsFinite(value))
        {
            // Whole numbers (flags, counts, states) take the integer path, several times cheaper than the shortest
            // round-trip double formatting and the same text.
            if (value == Math.Floor(value) && Math.Abs(value) < 1e15 && !(value == 0 && double.IsNegative(value)))
            {
                ((long)value).TryFormat(destination, out written, default, CultureInfo.InvariantCulture);
                return written;
            }

            value.TryFormat(destination, out written, "R", CultureInfo.InvariantCulture);
            return written;
        }

        Encoding.UTF8.TryGetBytes(Format(value), destination, out written);
        return written;
    }

    internal static string Format(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ when double.IsNaN(value) => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    private static void Write(IBufferWriter<byte> output, string text)
    {
        var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        output.Advance(Encoding.UTF8.GetBytes(text, span));
    }

    // 0.0.4: in HELP, backslash and line feed are escaped; in label values also the double quote. OpenMetrics escapes
    // the double quote in HELP too.
    private static string EscapeHelp(string help, bool openMetrics)
    {
        var escaped = help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
        return openMetrics ? escaped.Replace("\"", "\\\"", StringComparison.Ordinal) : escaped;
    }

    private static string EscapeLabel(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
