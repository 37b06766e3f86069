using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>The units under systemd/ as systemd's own tools read them. Running them under a real systemd (PID 1)
/// is the appliance rig's job (issue 5).</summary>
public class SystemdUnitTests
{
    private static string Unit(string name) => Path.Combine(RepositoryPaths.Root, "systemd", name);

    [Fact]
    public async Task The_service_unit_verifies_clean_and_a_broken_one_would_not()
    {
        using var directory = new TempDirectory();
        // verify checks that ExecStart= exists; point it at a stand-in executable of the same name.
        var binary = directory.File("apphbd");
        await File.WriteAllTextAsync(binary, "#!/bin/sh\n", TestContext.Current.CancellationToken);
        File.SetUnixFileMode(binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var text = (await File.ReadAllTextAsync(Unit("apphbd.service"), TestContext.Current.CancellationToken)).Replace("/usr/sbin/apphbd", binary, StringComparison.Ordinal);
        var unit = directory.File("apphbd.service");
        await File.WriteAllTextAsync(unit, text, TestContext.Current.CancellationToken);

        // Man pages come with the .deb; everything else must be clean: verify prints nothing at all.
        var (code, output) = await ProcessRunner.RunAsync("systemd-analyze", "verify", "--man=no", unit);
        Assert.Equal(0, code);
        Assert.Equal(string.Empty, output.Trim());

        var broken = directory.File("broken.service");
        await File.WriteAllTextAsync(broken, text.Replace("Type=notify", "Type=notifyy", StringComparison.Ordinal), TestContext.Current.CancellationToken);
        var (_, complaint) = await ProcessRunner.RunAsync("systemd-analyze", "verify", "--man=no", broken);
        Assert.Contains("Failed to parse service type", complaint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_unit_keeps_the_watchdog_contract()
    {
        var unit = await File.ReadAllLinesAsync(Unit("apphbd.service"), TestContext.Current.CancellationToken);
        Assert.Contains("Type=notify", unit);
        Assert.Contains("NotifyAccess=main", unit);
        Assert.Contains("Restart=always", unit);
        Assert.Contains(unit, l => l.StartsWith("WatchdogSec=", StringComparison.Ordinal));
        Assert.Contains("CapabilityBoundingSet=CAP_SYS_NICE CAP_IPC_LOCK CAP_KILL CAP_SETUID CAP_SETGID CAP_CHOWN", unit);
        Assert.DoesNotContain(unit, l => l.StartsWith("MemoryDenyWriteExecute=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sysusers_creates_the_socket_group_and_tmpfiles_the_runtime_directory()
    {
        var (code, output) = await ProcessRunner.RunAsync("systemd-sysusers", "--dry-run", Unit("apphb.sysusers.conf"));
        Assert.Equal(0, code);
        Assert.Contains("Creating group 'apphb'", output, StringComparison.Ordinal);

        using var root = new TempDirectory();
        Directory.CreateDirectory(Path.Combine(root.Path, "etc"));
        await File.WriteAllTextAsync(Path.Combine(root.Path, "etc", "group"), "root:x:0:\napphb:x:995:\n", TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(root.Path, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n", TestContext.Current.CancellationToken);
        var (created, log) = await ProcessRunner.RunAsync("systemd-tmpfiles", "--create", $"--root={root.Path}", Unit("apphb.tmpfiles.conf"));
        Assert.True(created == 0, log);
        var directory = Path.Combine(root.Path, "run", "apphb");
        Assert.True(Directory.Exists(directory));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute,
            File.GetUnixFileMode(directory));
    }
}
