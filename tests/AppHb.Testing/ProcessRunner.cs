using System.Diagnostics;

namespace AppHb.Testing;

/// <summary>What a program printed and how it ended. <see cref="Output"/> is standard error followed by standard
/// output, so that a script's last line of output (build-deb.sh prints the package path) stays last; compare values
/// against <see cref="StandardOutput"/> only: a tool's first run on a machine may say so on standard error (net-snmp:
/// "Created directory: /var/lib/snmp/cert_indexes").</summary>
public sealed record ProcessResult(int Code, string StandardOutput, string StandardError)
{
    public string Output => StandardError + StandardOutput;

    public void Deconstruct(out int code, out string output) => (code, output) = (Code, Output);
}

/// <summary>Runs a program to completion for tests that check tools' verdicts (systemd-analyze, lintian, dtc, the
/// packaging scripts).</summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(string file, params string[] args)
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
        return new ProcessResult(process.ExitCode, await output, await error);
    }

    /// <summary>kill(2): sends <paramref name="signal"/> to <paramref name="pid"/>.</summary>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
