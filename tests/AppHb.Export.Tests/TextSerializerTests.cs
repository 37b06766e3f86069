using AppHb.Export.Metrics;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Export.Tests;

/// <summary>Exposition text compared literally: what Prometheus parses is bytes, not objects.</summary>
public class TextSerializerTests
{
    private static CollectorRegistry Sample()
    {
        var registry = new CollectorRegistry();
        var restarts = registry.CreateCounter("apphb_service_restarts_total", "Restarts of a service.", "service");
        restarts.WithLabels("web").Inc(3);
        restarts.WithLabels("db").Inc();
        registry.CreateGauge("apphb_watchdog_timeout_seconds", "Hardware watchdog timeout.").Set(30);
        var latency = registry.CreateHistogram("apphb_check_duration_seconds", "Check duration.", [0.001, 0.01, 0.1], "service", "check");
        var http = latency.WithLabels("web", "health");
        http.Observe(0.0004);
        http.Observe(0.002);
        http.Observe(0.5);
        return registry;
    }

    [Fact]
    public void Prometheus_text_0_0_4_is_sorted_escaped_and_cumulative()
    {
        var text = TextSerializer.Serialize(Sample().Collect(), openMetrics: false);
        Assert.Equal("""
            # HELP apphb_check_duration_seconds Check duration.
            # TYPE apphb_check_duration_seconds histogram
            apphb_check_duration_seconds_bucket{service="web",check="health",le="0.001"} 1
            apphb_check_duration_seconds_bucket{service="web",check="health",le="0.01"} 2
            apphb_check_duration_seconds_bucket{service="web",check="health",le="0.1"} 2
            apphb_check_duration_seconds_bucket{service="web",check="health",le="+Inf"} 3
            apphb_check_duration_seconds_sum{service="web",check="health"} 0.5024
            apphb_check_duration_seconds_count{service="web",check="health"} 3
            # HELP apphb_service_restarts_total Restarts of a service.
            # TYPE apphb_service_restarts_total counter
            apphb_service_restarts_total{service="db"} 1
            apphb_service_restarts_total{service="web"} 3
            # HELP apphb_watchdog_timeout_seconds Hardware watchdog timeout.
            # TYPE apphb_watchdog_timeout_seconds gauge
            apphb_watchdog_timeout_seconds 30

            """.Replace("\r\n", "\n", StringComparison.Ordinal), text);
    }

    [Fact]
    public void OpenMetrics_names_counter_families_without_total_and_ends_with_EOF()
    {
        var text = TextSerializer.Serialize(Sample().Collect(), openMetrics: true);
        Assert.Contains("# TYPE apphb_service_restarts counter\napphb_service_restarts_total{service=\"db\"} 1\n", text, StringComparison.Ordinal);
        Assert.EndsWith("# EOF\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_removed_child_leaves_the_exposition_and_comes_back_fresh()
    {
        var registry = new CollectorRegistry();
        var age = registry.CreateGauge("apphb_client_last_beat_age_seconds", "Age.", "name");
        var kept = age.WithLabels("a");
        kept.Set(3);
        age.WithLabels("b").Set(2);
        Assert.True(age.Remove("b"));
        Assert.False(age.Remove("b"));
        Assert.Equal(
            "# HELP apphb_client_last_beat_age_seconds Age.\n# TYPE apphb_client_last_beat_age_seconds gauge\n" +
            "apphb_client_last_beat_age_seconds{name=\"a\"} 3\n",
            TextSerializer.Serialize(registry.Collect(), openMetrics: false));
        Assert.Same(kept, age.WithLabels("a"));
        Assert.Equal(0, age.WithLabels("b").Value);
    }

    [Fact]
    public void Children_come_out_in_label_order_whatever_order_they_came_and_went_in() => Prop.ForAll(
        Arb.From(Gen.ListOf(from a in Gen.Elements("", "a", "ab", "b", "é", "Z") from b in Gen.Elements("0", "1", "10", "9") from keep in Gen.Elements(true, false) select (a, b, keep))),
        children =>
        {
            var registry = new CollectorRegistry();
            var gauge = registry.CreateGauge("g", "G.", "name", "instance");
            foreach (var (a, b, _) in children)
            {
                gauge.WithLabels(a, b);
            }

            gauge.Children(); // ordered once, so the removals below must invalidate it
            var kept = children.Where(c => c.keep).Select(c => (c.a, c.b)).ToHashSet();
            foreach (var (a, b, _) in children)
            {
                if (!kept.Contains((a, b)))
                {
                    gauge.Remove(a, b);
                }
            }

            var expected = kept.OrderBy(c => c.a, StringComparer.Ordinal).ThenBy(c => c.b, StringComparer.Ordinal);
            return gauge.Children().Select(c => (c.Labels[0], c.Labels[1])).SequenceEqual(expected);
        }).QuickCheckThrowOnFailure();

    [Theory]
    [InlineData(30.0, "30")]
    [InlineData(-5.0, "-5")]
    [InlineData(123456789012.0, "123456789012")]
    [InlineData(999999999999999.0, "999999999999999")]
    [InlineData(-0.0, "-0")]
    [InlineData(0.1, "0.1")]
    [InlineData(1.5e-7, "1.5E-07")]
    public void Whole_numbers_print_as_integers_and_the_rest_as_shortest_round_trip(double value, string expected)
    {
        var registry = new CollectorRegistry();
        registry.CreateGauge("g", "h").Set(value);
        Assert.EndsWith($"\ng {expected}\n", TextSerializer.Serialize(registry.Collect(), openMetrics: false), StringComparison.Ordinal);
        // The integer path is a shortcut, never a different text.
        Assert.Equal(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), expected);
    }

    [Fact]
    public void Label_values_and_help_are_escaped()
    {
        var registry = new CollectorRegistry();
        registry.CreateGauge("g", "a \\ b\nc \"q\"", "l").WithLabels("x\"y\\z\nw").Set(double.NaN);
        Assert.Equal("# HELP g a \\\\ b\\nc \"q\"\n# TYPE g gauge\ng{l=\"x\\\"y\\\\z\\nw\"} NaN\n", TextSerializer.Serialize(registry.Collect(), openMetrics: false));
        Assert.Contains("# HELP g a \\\\ b\\nc \\\"q\\\"\n", TextSerializer.Serialize(registry.Collect(), openMetrics: true), StringComparison.Ordinal);
    }

    [Fact]
    public void Non_ascii_label_values_and_help_are_utf_8_and_extreme_values_fit()
    {
        var registry = new CollectorRegistry();
        var gauge = registry.CreateGauge("g", "Größe ☃", "name");
        gauge.WithLabels("café 🙂").Set(-1.2345678901234567E-308);
        gauge.WithLabels("x").Set(double.NegativeInfinity);
        var output = new System.Buffers.ArrayBufferWriter<byte>(1);
        TextSerializer.Serialize(registry.Collect(), openMetrics: false, output);
        Assert.Equal(
            "# HELP g Größe ☃\n# TYPE g gauge\ng{name=\"café 🙂\"} -1.2345678901234567E-308\ng{name=\"x\"} -Inf\n"u8.ToArray(),
            output.WrittenSpan.ToArray());
    }

    [Fact]
    public void An_unlabelled_histogram_has_buckets_sum_and_count()
    {
        var registry = new CollectorRegistry();
        registry.CreateHistogram("h_seconds", "h", [0.5, 1]).Observe(0.75);
        Assert.Equal("# HELP h_seconds h\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.5\"} 0\nh_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.75\nh_seconds_count 1\n",
            TextSerializer.Serialize(registry.Collect(), openMetrics: false));
    }

    [Theory]
    [InlineData("bad-name")]
    [InlineData("9starts_with_digit")]
    public void Invalid_names_are_refused(string name) =>
        Assert.Throws<ArgumentException>(() => new CollectorRegistry().CreateGauge(name, "h"));

    [Fact]
    public void Counters_must_end_in_total_and_never_go_down()
    {
        var registry = new CollectorRegistry();
        Assert.Throws<ArgumentException>(() => registry.CreateCounter("apphb_restarts", "h"));
        var counter = registry.CreateCounter("apphb_restarts_total", "h");
        Assert.Throws<ArgumentOutOfRangeException>(() => counter.Inc(-1));
        counter.WithLabels().IncTo(5);
        counter.WithLabels().IncTo(2);
        Assert.Equal(5, counter.Value);
    }

    [Fact]
    public void Label_count_mismatch_and_duplicate_families_are_refused()
    {
        var registry = new CollectorRegistry();
        var gauge = registry.CreateGauge("x", "h", "a", "b");
        Assert.Throws<ArgumentException>(() => gauge.WithLabels("only-one"));
        Assert.Throws<InvalidOperationException>(() => registry.CreateGauge("x", "h"));
        registry.CreateCounter("y_total", "h");
        Assert.Throws<InvalidOperationException>(() => registry.CreateGauge("y", "h"));
    }

    [Fact]
    public void Before_collect_callbacks_refresh_values_on_every_scrape()
    {
        var registry = new CollectorRegistry();
        var gauge = registry.CreateGauge("refreshed", "h");
        var calls = 0;
        registry.AddBeforeCollectCallback(() => gauge.Set(++calls));
        registry.Collect();
        var text = TextSerializer.Serialize(registry.Collect(), openMetrics: false);
        Assert.Contains("refreshed 2\n", text, StringComparison.Ordinal);
    }
}
