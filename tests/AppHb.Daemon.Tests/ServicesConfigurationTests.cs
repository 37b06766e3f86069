using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Daemon.Services;

namespace AppHb.Daemon.Tests;

public class ServicesConfigurationTests
{
    private static ConfigurationException Invalid(string yaml) =>
        Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(yaml, "apphbd.yaml"));

    [Fact]
    public void A_full_service_reads_every_key_with_its_defaults_filled_in()
    {
        var options = ConfigurationLoader.Load("""
            services:
              db:
                command: sleep 1000
              web:
                command: [/bin/sh, -c, "exec sleep 1000"]
                directory: /tmp
                environment:
                  A: "1"
                user: nobody
                group: nogroup
                umask: "0027"
                output: /tmp/web.log
                stop-signal: INT
                stop-timeout: 3s
                requires: [db]
                readiness: 2s
                critical: true
                restart:
                  backoff: 50ms
                  max-restarts: 2
                  window: 10s
                  escalation: reboot
                  no-restart-exit-codes: [0, 100]
                heartbeat:
                  source: notify
                  interval: 5s
                checks:
                  - type: tcp
                    address: 127.0.0.1:80
                  - name: deep
                    type: http
                    url: http://127.0.0.1/health
                    status: 204
                    body: ok
                    interval: 1m
                    timeout: 10s
                    failures: 1
                    action: restart-dependents
                    depth: heavy
            """, "t.yaml");
        var db = options.Services.Single(s => s.Name == "db");
        Assert.Equal(["/usr/bin/sleep", "1000"], db.Command);
        Assert.Equal(RestartPolicy.Default.Canonical(), db.Restart.Canonical());
        Assert.Equal(Readiness.Immediate, db.Readiness);
        Assert.Equal(15, db.StopSignal);
        Assert.Equal(TimeSpan.FromSeconds(10), db.StopTimeout);

        var web = options.Services.Single(s => s.Name == "web");
        Assert.Equal(2, web.StopSignal);
        Assert.Equal((UnixFileMode)Convert.ToInt32("027", 8), web.Umask);
        Assert.Equal(new Readiness(ReadinessKind.Delay, TimeSpan.FromSeconds(2)), web.Readiness);
        Assert.Equal(EscalationAction.Reboot, web.Restart.Escalation);
        Assert.Equal([0, 100], web.Restart.DoNotRestartExitCodes.Order());
        Assert.Equal(new HeartbeatCheck(HeartbeatSource.Notify, TimeSpan.FromSeconds(5), CheckAction.Restart), web.Heartbeat);
        Assert.Equal("tcp0", web.Checks[0].Name);
        Assert.Equal(3, web.Checks[0].Failures);
        Assert.Equal(CheckAction.RestartWithDependents, web.Checks[1].Action);
        Assert.True(web.Checks[1].Heavy);
        Assert.Equal(204, web.Checks[1].ExpectStatus);
        Assert.True(web.Critical);
    }

    [Fact]
    public void A_dependency_cycle_is_refused_naming_the_cycle()
    {
        var e = Invalid("""
            services:
              a:
                command: [/bin/true]
                requires: [c]
              b:
                command: [/bin/true]
                requires: [a]
              c:
                command: [/bin/true]
                requires: [b]
            """);
        Assert.Contains(e.Errors, m => m.Contains("dependency cycle: a -> c -> b -> a", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_requirements_bad_commands_and_failover_are_refused_all_at_once_with_positions()
    {
        var e = Invalid("""
            services:
              web:
                command: [/no/such/binary]
                requires: [ghost]
                user: no-such-user-here
                readiness: probe
                restart:
                  escalation: failover
                stop-signal: SIGFOO
                checks:
                  - type: tcp
                    address: nowhere
                  - type: http
                    url: ftp://x
                    timeout: 20s
              "Bad Name":
                command: [/bin/true]
            """);
        var all = string.Join('\n', e.Errors);
        Assert.Contains("apphbd.yaml:3:14: services.web.command: /no/such/binary does not exist or is not executable", all, StringComparison.Ordinal);
        Assert.Contains("ghost", all, StringComparison.Ordinal);
        Assert.Contains("services.web.user: no user \"no-such-user-here\"", all, StringComparison.Ordinal);
        Assert.Contains("failover needs the peer node (level 3)", all, StringComparison.Ordinal);
        Assert.Contains("services.web.stop-signal: \"SIGFOO\" is not a signal", all, StringComparison.Ordinal);
        Assert.Contains("services.web.checks[0].address: must be host:port", all, StringComparison.Ordinal);
        Assert.Contains("services.web.checks[1].url: must be an absolute http:// or https:// URL", all, StringComparison.Ordinal);
        Assert.Contains("services.web.checks[1].timeout: must not exceed the check's interval", all, StringComparison.Ordinal);
        Assert.Contains("services.Bad Name: a service name is", all, StringComparison.Ordinal);
        Assert.True(e.Errors.Count >= 9, all);
    }

    [Fact]
    public void Probe_readiness_needs_a_check_and_a_notify_heartbeat_cannot_be_a_pidfile_service()
    {
        var e = Invalid("""
            services:
              x:
                command: [/bin/true]
                readiness: probe
                pidfile: /run/x.pid
                heartbeat:
                  source: notify
                  interval: 1s
            """);
        Assert.Contains(e.Errors, m => m.Contains("probe readiness needs at least one check", StringComparison.Ordinal));
        Assert.Contains(e.Errors, m => m.Contains("a pidfile service forks away", StringComparison.Ordinal));
    }

    [Fact]
    public void A_changed_service_has_a_different_canonical_form_and_an_unchanged_one_the_same()
    {
        const string Base = """
            services:
              a:
                command: [/bin/sleep, "1"]
                checks:
                  - type: tcp
                    address: 127.0.0.1:1
            """;
        var one = ConfigurationLoader.Load(Base, "1").Services[0];
        var same = ConfigurationLoader.Load(Base, "2").Services[0];
        var other = ConfigurationLoader.Load(Base.Replace("127.0.0.1:1", "127.0.0.1:2", StringComparison.Ordinal), "3").Services[0];
        Assert.Equal(one.Canonical(), same.Canonical());
        Assert.NotEqual(one.Canonical(), other.Canonical());
        Assert.Equal(ConfigurationLoader.Load(Base, "1"), ConfigurationLoader.Load(Base, "2"));
    }

    [Fact]
    public void A_service_with_a_user_and_a_notify_heartbeat_execs_through_sh_then_setpriv()
    {
        var service = ConfigurationLoader.Load("""
            services:
              w:
                command: [/bin/sleep, "5"]
                user: nobody
                heartbeat:
                  source: notify
                  interval: 2s
            """, "t").Services[0];
        var request = ServiceLaunch.Build(service, "/run/apphb/apphbd.sock", "/run/apphb/notify/w");
        Assert.Equal("/bin/sh", request.Path);
        Assert.Equal(["/bin/sh", "-c", "WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$@\"", "w", "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--init-groups", "--", "/bin/sleep", "5"], request.Arguments);
        Assert.Contains("WATCHDOG_USEC=2000000", request.Environment);
        Assert.Contains("NOTIFY_SOCKET=/run/apphb/notify/w", request.Environment);
        Assert.Contains("APPHB_SOCKET=/run/apphb/apphbd.sock", request.Environment);
        Assert.Contains("USER=nobody", request.Environment);
    }

    [Theory]
    [InlineData("READY=1", true, false, false, null)]
    [InlineData("WATCHDOG=1\nSTATUS=all fine", false, true, false, "all fine")]
    [InlineData("WATCHDOG=trigger", false, false, true, null)]
    [InlineData("MAINPID=4\nX=y\n", false, false, false, null)]
    public void Notify_datagrams_parse_as_sd_notify_defines(string text, bool ready, bool watchdog, bool trigger, string? status)
    {
        var message = AppHb.Core.Supervision.NotifyMessage.Parse(text);
        Assert.Equal(new AppHb.Core.Supervision.NotifyMessage(ready, watchdog, trigger, false, status), message);
    }
}

public class MetricsConfigurationTests
{
    [Fact]
    public void Metrics_listen_defaults_to_loopback_9747_and_can_be_turned_off()
    {
        Assert.Equal(System.Net.IPEndPoint.Parse("127.0.0.1:9747"), ConfigurationLoader.Defaults().Metrics.Listen);
        Assert.Null(ConfigurationLoader.Load("metrics:\n  listen: \"off\"\n", "t").Metrics.Listen);
        Assert.Equal(System.Net.IPEndPoint.Parse("[::1]:9100"), ConfigurationLoader.Load("metrics:\n  listen: \"[::1]:9100\"\n", "t").Metrics.Listen);
    }

    [Theory]
    [InlineData("localhost:9747")]
    [InlineData("127.0.0.1")]
    [InlineData("[::1]")]
    public void A_listen_value_without_an_address_and_port_is_refused(string value)
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load($"metrics:\n  listen: \"{value}\"\n", "apphbd.yaml"));
        Assert.Contains($"apphbd.yaml:2:11: metrics.listen: \"{value}\" is not an address and port", Assert.Single(e.Errors), StringComparison.Ordinal);
    }
}

public class SnmpConfigurationTests
{
    [Fact]
    public void AgentX_defaults_to_net_snmp_s_socket_and_takes_its_address_forms()
    {
        Assert.Equal("/var/agentx/master", ConfigurationLoader.Defaults().Snmp.AgentX!.Text);
        Assert.Null(ConfigurationLoader.Load("snmp:\n  agentx: \"off\"\n", "t").Snmp.AgentX);
        Assert.IsType<System.Net.Sockets.UnixDomainSocketEndPoint>(ConfigurationLoader.Load("snmp:\n  agentx: unix:/run/agentx\n", "t").Snmp.AgentX!.Address);
        Assert.Equal(System.Net.IPEndPoint.Parse("127.0.0.1:705"), ConfigurationLoader.Load("snmp:\n  agentx: tcp:localhost:705\n", "t").Snmp.AgentX!.Address);
    }

    [Theory]
    [InlineData("tcp:snmp.example:705")]
    [InlineData("tcp:127.0.0.1")]
    [InlineData("agentx")]
    [InlineData("udp:127.0.0.1:705")]
    public void An_agentx_value_that_is_not_a_socket_is_refused_with_the_forms_that_are(string value)
    {
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load($"snmp:\n  agentx: \"{value}\"\n", "apphbd.yaml"));
        Assert.Contains($"apphbd.yaml:2:11: snmp.agentx: \"{value}\" is not an AgentX address: use a socket path", Assert.Single(e.Errors), StringComparison.Ordinal);
    }
}
