using System.Diagnostics;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>packaging/build-deb.sh as a release would run it. Installing, upgrading and purging under a real systemd
/// is the appliance rig's job (issue 5); here: lintian, the contents, and the packaged binaries working together.</summary>
public class DebianPackageTests
{
    [Fact]
    public async Task The_package_builds_lintian_finds_no_error_and_its_binaries_work()
    {
        using var directory = new TempDirectory();
        var (built, log) = await ProcessRunner.RunAsync(Path.Combine(RepositoryPaths.Root, "packaging", "build-deb.sh"), directory.Path);
        Assert.True(built == 0, log);
        var deb = log.Trim().Split('\n')[^1];
        Assert.EndsWith("_amd64.deb", deb, StringComparison.Ordinal);

        var (lint, findings) = await ProcessRunner.RunAsync("lintian", "--fail-on", "error", deb);
        Assert.True(lint == 0, findings);
        Assert.DoesNotContain("E: ", findings, StringComparison.Ordinal);

        var (_, contents) = await ProcessRunner.RunAsync("dpkg-deb", "--contents", deb);
        foreach (var path in new[]
        {
            "./usr/sbin/apphbd", "./usr/sbin/apphbctl", "./etc/apphb/apphbd.yaml", "./lib/systemd/system/apphbd.service",
            "./usr/lib/sysusers.d/apphb.conf", "./usr/lib/tmpfiles.d/apphb.conf", "./usr/share/man/man8/apphbd.8.gz",
            "./usr/share/man/man8/apphbctl.8.gz", "./usr/share/man/man5/apphbd.yaml.5.gz", "./usr/share/doc/apphb/copyright",
            "./usr/share/snmp/mibs/APPHB-MIB.txt", "./etc/snmp/snmpd.conf.d/apphb.conf",
        })
        {
            Assert.Contains(path, contents, StringComparison.Ordinal);
        }

        var (_, conffiles) = await ProcessRunner.RunAsync("dpkg-deb", "--info", deb, "conffiles");
        Assert.Equal("/etc/apphb/apphbd.yaml\n/etc/snmp/snmpd.conf.d/apphb.conf", conffiles.Trim());

        // The packaged binaries are native executables: run them against each other.
        var root = directory.File("root");
        Assert.Equal(0, (await ProcessRunner.RunAsync("dpkg-deb", "--extract", deb, root)).Code);
        var apphbd = Path.Combine(root, "usr", "sbin", "apphbd");
        var shippedConfig = Path.Combine(root, "etc", "apphb", "apphbd.yaml");
        var (check, checkLog) = await ProcessRunner.RunAsync(apphbd, "--check-config", "--config", shippedConfig);
        Assert.True(check == 0, checkLog);

        var socket = directory.File("apphbd.sock");
        var config = directory.File("test.yaml");
        // The shipped (native) daemon as snmpd's subagent, read with the shipped MIB.
        await using var snmp = await NetSnmp.StartAsync();
        await File.WriteAllTextAsync(config, $"socket:\n  path: {socket}\nwatchdog:\n  backend: none\n  timeout: 4s\n  period: 1s\n" +
            $"metrics:\n  listen: 127.0.0.1:0\nsnmp:\n  agentx: {snmp.AgentXSocket}\n", TestContext.Current.CancellationToken);
        var snmpAnswer = string.Empty;
        using var daemon = Process.Start(new ProcessStartInfo(apphbd, ["--config", config]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        // Drained, so that a full pipe never holds the daemon up.
        var output = daemon.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var errors = daemon.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var expected = $"APPHB-MIB::apphbDaemonPid.0 = Gauge32: {daemon.Id}";
        try
        {
            var watch = Stopwatch.StartNew();
            while (!File.Exists(socket) && watch.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }

            var (status, text) = await ProcessRunner.RunAsync(Path.Combine(root, "usr", "sbin", "apphbctl"), "--socket", socket, "status");
            Assert.True(status == 0, text);
            Assert.Contains("watchdog none", text, StringComparison.Ordinal);

            // "No Such Object" names the OID too: wait for the value itself, since the subagent registers with snmpd
            // a moment after its socket appears (later still on a busy machine).
            var shippedMibs = Path.Combine(root, "usr", "share", "snmp", "mibs");
            var registration = Stopwatch.StartNew();
            while (true)
            {
                (_, snmpAnswer) = await ProcessRunner.RunAsync("snmpget", ["-M", $"{Path.Combine(RepositoryPaths.Root, "tests", "mibs")}:{shippedMibs}", "-m", "APPHB-MIB",
                    .. NetSnmp.V2c, snmp.Agent, "APPHB-MIB::apphbDaemonPid.0"]);
                if (snmpAnswer.Contains(expected, StringComparison.Ordinal) || registration.Elapsed > TimeSpan.FromSeconds(60))
                {
                    break;
                }

                await Task.Delay(200, TestContext.Current.CancellationToken);
            }
        }
        finally
        {
            daemon.Kill();
            await daemon.WaitForExitAsync(TestContext.Current.CancellationToken);
            await Task.WhenAll(output, errors);
        }

        Assert.True(snmpAnswer.Contains(expected, StringComparison.Ordinal),
            $"snmpget answered: {snmpAnswer}\napphbd's output:\n{await output}\n{await errors}");
    }
}
