using System.Globalization;
using System.Text;

namespace AppHb.Export.Metrics;

/// <summary>Writes the exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0.0.
/// https://prometheus.io/docs/instrumenting/exposition_formats/ and https://openmetrics.io/.</summary>
public static class TextSerializer
{
    public const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";
    public const string OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// <summary>OpenMetrics when the scraper's Accept header asks for it, else Prometheus text.</summary>
    public static bool PrefersOpenMetrics(string? accept) =>
        accept is not null && accept.Contains("application/openmetrics-text", StringComparison.OrdinalIgnoreCase);

    public static string Serialize(IReadOnlyList<Collector> collectors, bool openMetrics)
    {
        var text = new StringBuilder(4096);
        Serialize(collectors, openMetrics, text);
        return text.ToString();
    }

    /// <summary>Appends the exposition to <paramref name="text"/>: an endpoint reuses one builder across scrapes, so
    /// a scrape of hundreds of KB does not allocate a large-object-heap string (and the full collections that
    /// follow, which would pause apphbd's realtime threads too).</summary>
    public static void Serialize(IReadOnlyList<Collector> collectors, bool openMetrics, StringBuilder text)
    {
        ArgumentNullException.ThrowIfNull(collectors);
        ArgumentNullException.ThrowIfNull(text);
        foreach (var collector in collectors)
        {
            var family = openMetrics ? CollectorRegistry.FamilyName(collector) : collector.Name;
            text.Append("# HELP ").Append(family).Append(' ').Append(EscapeHelp(collector.Help, openMetrics)).Append('\n');
            text.Append("# TYPE ").Append(family).Append(' ').Append(TypeName(collector.Type)).Append('\n');
            var children = collector.Children();
            for (var c = 0; c < children.Count; c++)
            {
                var (_, rendered, child) = children[c];
                switch (child)
                {
                    case Counter.Child counter:
                        Sample(text, collector.Name, rendered, null, counter.Value);
                        break;
                    case Gauge.Child gauge:
                        Sample(text, collector.Name, rendered, null, gauge.Value);
                        break;
                    case Histogram.Child histogram:
                        var bounds = ((Histogram)collector).Buckets;
                        var (cumulative, sum, count) = histogram.Snapshot();
                        for (var i = 0; i < cumulative.Length; i++)
                        {
                            var le = i < bounds.Count ? Format(bounds[i]) : "+Inf";
                            Sample(text, collector.Name + "_bucket", rendered, le, cumulative[i]);
                        }

                        Sample(text, collector.Name + "_sum", rendered, null, sum);
                        Sample(text, collector.Name + "_count", rendered, null, count);
                        break;
                }
            }
        }

        if (openMetrics)
        {
            text.Append("# EOF\n");
        }
    }

    private static string TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter",
        MetricType.Gauge => "gauge",
        _ => "histogram",
    };

    /// <summary>name="value",other="value" for a child's labels, escaped; without the braces, so a histogram can add
    /// its le.</summary>
    internal static string RenderLabels(IReadOnlyList<string> labelNames, IReadOnlyList<string> labels)
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

        return text.ToString();
    }

    private static void Sample(StringBuilder text, string name, string labels, string? le, double value)
    {
        text.Append(name);
        if (labels.Length > 0 || le is not null)
        {
            text.Append('{').Append(labels);
            if (le is not null)
            {
                text.Append(labels.Length > 0 ? "," : string.Empty).Append("le=\"").Append(le).Append('"');
            }

            text.Append('}');
        }

        text.Append(' ');
        AppendValue(text, value);
        text.Append('\n');
    }

    private static void AppendValue(StringBuilder text, double value)
    {
        if (double.IsFinite(value))
        {
            // Formatted in place: no string per sample. Whole numbers (flags, counts, states) take the integer path,
            // several times cheaper than the shortest round-trip double formatting and the same text.
            Span<char> buffer = stackalloc char[32];
            if (value == Math.Floor(value) && Math.Abs(value) < 1e15 && !(value == 0 && double.IsNegative(value)))
            {
                ((long)value).TryFormat(buffer, out var digits, default, CultureInfo.InvariantCulture);
                text.Append(buffer[..digits]);
                return;
            }

            if (value.TryFormat(buffer, out var written, "R", CultureInfo.InvariantCulture))
            {
                text.Append(buffer[..written]);
                return;
            }
        }

        text.Append(Format(value));
    }

    internal static string Format(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ when double.IsNaN(value) => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

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
