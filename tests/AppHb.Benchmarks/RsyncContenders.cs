using System.Diagnostics;
using AppHb.Testing;

namespace AppHb.Benchmarks;

/// <summary>The peers the replication benchmarks run beside apphbd, in the pair's namespaces: an rsync daemon on
/// node2's dedicated-link address, and lsyncd on node1 syncing to it.</summary>
internal static class RsyncContenders
{
    /// <summary>An rsync daemon on node2 whose module <c>data</c> is <paramref name="module"/> (its config in the rig's
    /// directory as <c>rsyncd-NAME.conf</c>).</summary>
    public static Process StartDaemon(PairRig rig, string name, string module, int port)
    {
        var conf = Path.Combine(rig.Directory, $"rsyncd-{name}.conf");
        File.WriteAllText(conf, $"""
            use chroot = no
            uid = root
            gid = root
            [data]
              path = {module}
              read only = no

            """);
        return Start(rig.B.Name, "rsync", "--daemon", "--no-detach", $"--config={conf}", $"--port={port}", "--address=10.216.1.2");
    }

    /// <summary>The rsync daemon (first) and lsyncd syncing <paramref name="source"/> to it with
    /// <paramref name="delay"/> seconds of batching (second).</summary>
    public static Contender StartLsyncd(PairRig rig, string name, string source, string replica, int delay, int port)
    {
        var lsyncd = Path.Combine(rig.Directory, $"lsyncd-{name}.lua");
        File.WriteAllText(lsyncd, $$"""
            settings { nodaemon = true, insist = true, statusFile = "{{Path.Combine(rig.Directory, $"lsyncd-{name}.status")}}" }
            sync { default.rsync, source = "{{source}}", target = "rsync://10.216.1.2:{{port}}/data/", delay = {{delay}} }

            """);
        var daemon = StartDaemon(rig, name, replica, port);
        return new Contender(daemon, Start(rig.A.Name, "lsyncd", lsyncd));
    }

    private static Process Start(string netns, string file, params string[] args)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "netns", "exec", netns, file }.Concat(args))
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}

/// <summary>A contender's processes, killed (with their children) when disposed.</summary>
internal sealed class Contender(params Process[] processes) : IDisposable
{
    public IReadOnlyList<Process> Processes => processes;

    public void Dispose()
    {
        foreach (var process in processes)
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
        }
    }
}
