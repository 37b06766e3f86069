using System.Diagnostics;

namespace AppHb.Testing;

/// <summary>Runs a program to completion for tests that check tools' verdicts (systemd-analyze, lintian, dtc, the
/// packaging scripts).</summary>
public static class ProcessRunner
{
    /// <returns>The exit code, and standard error followed by standard output, so that a script's last line of
    /// output (build-deb.sh prints the package path) stays last.</returns>
    public static async Task<(int Code, string Output)> RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await error + await output);
    }

    /// <summary>kill(2): sends <paramref name="signal"/> to <paramref name="pid"/>.</summary>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
