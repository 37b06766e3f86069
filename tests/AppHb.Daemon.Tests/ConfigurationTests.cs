using AppHb.Daemon.Configuration;
using AppHb.Linux.Realtime;
using AppHb.Linux.Watchdog;

namespace AppHb.Daemon.Tests;

public class ConfigurationTests
{
    [Fact]
    public void Embedded_defaults_are_valid_and_are_what_the_documentation_says()
    {
        var options = ConfigurationLoader.Defaults();
        Assert.Equal("/run/apphb/apphbd.sock", options.Socket.Path);
        Assert.Equal((UnixFileMode)Convert.ToInt32("660", 8), options.Socket.Mode);
        Assert.Null(options.Socket.Group);
        Assert.Equal(WatchdogBackend.None, options.Watchdog.Device.Backend);
        Assert.Equal(TimeSpan.FromSeconds(60), options.Watchdog.Device.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(10), options.Watchdog.Period);
        Assert.Equal(new RealtimeOptions(true, true, RealtimePolicy.Fifo, 50), options.Realtime);
        Assert.Equal(100_000, options.Clients.Max);
    }

    [Fact]
    public void The_commented_default_file_shipped_in_etc_means_exactly_the_defaults()
    {
        // packaging/build-deb.sh installs `apphbd --print-default-config` as /etc/apphb/apphbd.yaml.
        Assert.Equal(ConfigurationLoader.Defaults(), ConfigurationLoader.Load(DefaultConfiguration.Yaml, "/etc/apphb/apphbd.yaml"));
    }

    public static TheoryData<string> BoardProfiles => new(Directory.GetFiles(
        Path.Combine(AppHb.Testing.RepositoryPaths.Root, "hw", "boards"), "*.yaml").Select(Path.GetFileName)!);

    [Theory]
    [MemberData(nameof(BoardProfiles))]
    public void Every_board_profile_is_a_valid_configuration(string profile)
    {
        var path = Path.Combine(AppHb.Testing.RepositoryPaths.Root, "hw", "boards", profile);
        var options = ConfigurationLoader.LoadFile(path);
        Assert.NotEqual(WatchdogBackend.None, options.Watchdog.Device.Backend);
        Assert.True(options.Watchdog.Period * 2 <= options.Watchdog.Device.Timeout);
    }

    [Fact]
    public void User_values_override_defaults_key_by_key()
    {
        var options = ConfigurationLoader.Load("""
            socket:
              group: apphb
            watchdog:
              backend: linux
              timeout: 30s
              period: 5s
            realtime:
              policy: rr
            """, "test.yaml");
        Assert.Equal("apphb", options.Socket.Group);
        Assert.Equal("/run/apphb/apphbd.sock", options.Socket.Path);
        Assert.Equal(WatchdogBackend.Linux, options.Watchdog.Device.Backend);
        Assert.Equal("/dev/watchdog0", options.Watchdog.Device.Device);
        Assert.Equal(RealtimePolicy.RoundRobin, options.Realtime.Policy);
        Assert.Equal(50, options.Realtime.Priority);
    }

    [Fact]
    public void Gpio_backend_reads_its_lines()
    {
        var options = ConfigurationLoader.Load("""
            watchdog:
              backend: gpio
              timeout: 1600ms
              period: 500ms
              gpio:
                chip: /dev/gpiochip2
                line: 17
                active-low: true
                enable-line: 18
            """, "gpio.yaml");
        Assert.Equal(new GpioWatchdogSettings("/dev/gpiochip2", 17, true, 18, false), options.Watchdog.Device.Gpio);
    }

    public static TheoryData<string, string> InvalidFiles => new()
    {
        { "watchdog:\n  timeout: 6O s\n", "cfg.yaml:2:12: watchdog.timeout: \"6O s\" is not a duration; use a number with a unit: ms, s, m or h" },
        { "watchdog:\n  backend: hardware\n", "cfg.yaml:2:12: watchdog.backend: \"hardware\" is not valid; use one of: none, linux, gpio" },
        { "watchdgo:\n  backend: none\n", "cfg.yaml:1:1: watchdgo: unknown key; valid keys here are: socket, clients, watchdog, realtime, events" },
        { "socket:\n  path: relative.sock\n", "cfg.yaml:2:9: socket.path: must be an absolute path" },
        { "socket:\n  mode: \"0999\"\n", "cfg.yaml:2:9: socket.mode: \"0999\" is not an octal permission mode" },
        { "watchdog:\n  timeout: 10s\n  period: 6s\n", "cfg.yaml:3:11: watchdog.period: the tickle period 6000ms must be at most half the timeout (10000ms)" },
        { "realtime:\n  priority: 120\n", "cfg.yaml:2:13: realtime.priority: \"120\" is not an integer between 1 and 99" },
        { "realtime:\n  enabled: maybe\n", "cfg.yaml:2:12: realtime.enabled: \"maybe\" is not a boolean; use true or false" },
        { "watchdog:\n  backend: gpio\n", "cfg.yaml: watchdog.gpio: backend gpio needs a gpio section with at least chip and line" },
        { "watchdog:\n  backend: gpio\n  gpio:\n    chip: /dev/gpiochip0\n", "cfg.yaml: watchdog.gpio.line: required: the line offset of the watchdog's WDI input" },
        { "watchdog:\n  backend: linux\n  timeout: 1500ms\n  period: 500ms\n", "cfg.yaml:3:12: watchdog.timeout: the linux watchdog API programs whole seconds" },
        { "socket: [1, 2]\n", "cfg.yaml:1:9: socket: must be a mapping of keys, not a list" },
        { "socket:\n  path: /a\n  path: /b\n", "cfg.yaml:3:3: not valid YAML" },
        { "- just\n- a list\n", "cfg.yaml:1: the top level must be a mapping of sections" },
    };

    [Theory]
    [MemberData(nameof(InvalidFiles))]
    public void Each_error_names_file_line_column_key_and_what_is_valid(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(yaml, "cfg.yaml"));
        Assert.Contains(e.Errors, error => error.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void All_errors_of_a_file_are_reported_in_one_run()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load("""
            clients:
              max: 0
            events:
              history: lots
              colour: blue
            """, "many.yaml"));
        Assert.Equal(3, e.Errors.Count);
    }

    [Fact]
    public void A_missing_file_is_an_error_not_a_silent_default()
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.LoadFile("/nonexistent/apphbd.yaml"));
        Assert.StartsWith("/nonexistent/apphbd.yaml: cannot read the configuration", e.Errors.Single(), StringComparison.Ordinal);
    }
}
