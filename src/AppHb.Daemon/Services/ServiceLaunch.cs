using System.Globalization;
using AppHb.Core.Supervision;
using AppHb.Daemon.Configuration;
using AppHb.Linux.Accounts;
using AppHb.Linux.Processes;

namespace AppHb.Daemon.Services;

/// <summary>Turns a service definition into the exact exec of its process.
/// <para>posix_spawn cannot change credentials, so a service with <c>user</c>/<c>group</c> is exec'd through
/// util-linux's <c>setpriv</c> (always present on Debian), the Unix way runit's chpst and s6's s6-setuidgid follow.
/// WATCHDOG_PID must be the service's own pid, unknown before the spawn, so a notify-heartbeat service starts through
/// one <c>sh</c> that exports its own pid and execs the service: the pid is kept across exec. Both cost one extra exec
/// only for the services that need them.</para></summary>
internal static class ServiceLaunch
{
    internal const string SetPriv = "/usr/bin/setpriv";
    internal const string Shell = "/bin/sh";

    /// <summary>The uid and gid a service runs as (null: apphbd's own): the user's, its group overriding the gid.</summary>
    public static (uint? Uid, uint? Gid) Owner(ServiceDefinition service) => Owner(service, User(service));

    /// <summary>The service's user, looked up once per spawn (NSS may be a network lookup).</summary>
    private static UnixAccounts.UserAccount? User(ServiceDefinition service) =>
        service.User is not null && UnixAccounts.TryGetUser(service.User, out var account) ? account : null;

    private static (uint? Uid, uint? Gid) Owner(ServiceDefinition service, UnixAccounts.UserAccount? user)
    {
        var gid = user?.Gid;
        if (service.Group is not null && UnixAccounts.TryGetGroupId(service.Group, out var groupId))
        {
            gid = groupId;
        }

        return (user?.Uid, gid);
    }

    public static SpawnRequest Build(ServiceDefinition service, string clientSocketPath, string? notifySocketPath)
    {
        var environment = new List<string>
        {
            "PATH=" + ServicesConfiguration.DefaultPath,
            "APPHB_SOCKET=" + clientSocketPath,
            "APPHB_SERVICE=" + service.Name,
        };
        if (Environment.GetEnvironmentVariable("LANG") is { Length: > 0 } lang)
        {
            environment.Add("LANG=" + lang);
        }

        if (notifySocketPath is not null)
        {
            environment.Add("NOTIFY_SOCKET=" + notifySocketPath);
        }

        if (service.Heartbeat is { Source: HeartbeatSource.Notify } heartbeat)
        {
            environment.Add("WATCHDOG_USEC=" + ((long)(heartbeat.Interval.TotalMicroseconds)).ToString(CultureInfo.InvariantCulture));
        }

        var chain = new List<string>();
        if (service.User is not null || service.Group is not null)
        {
            chain.Add(SetPriv);
            var user = User(service);
            var (_, gid) = Owner(service, user);
            if (user is { } u)
            {
                chain.Add("--reuid=" + u.Uid.ToString(CultureInfo.InvariantCulture));
                environment.Add("USER=" + u.Name);
                environment.Add("LOGNAME=" + u.Name);
                environment.Add("HOME=" + u.Home);
            }

            chain.Add("--regid=" + (gid ?? 0).ToString(CultureInfo.InvariantCulture));
            // Supplementary groups of the user when it has a name to look them up by, none otherwise: never root's.
            chain.Add(user is not null && service.Group is null ? "--init-groups" : "--clear-groups");
            chain.Add("--");
        }

        chain.AddRange(service.Command);

        // Later entries of the same name win, as in a shell: the configured environment overrides ours.
        foreach (var (name, value) in service.Environment)
        {
            environment.RemoveAll(e => e.StartsWith(name + "=", StringComparison.Ordinal));
            environment.Add($"{name}={value}");
        }

        if (service.Heartbeat is { Source: HeartbeatSource.Notify })
        {
            chain.InsertRange(0, [Shell, "-c", "WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$@\"", service.Name]);
        }

        return new SpawnRequest
        {
            Path = chain[0],
            Arguments = chain,
            Environment = environment,
            WorkingDirectory = service.WorkingDirectory,
            Umask = service.Umask,
            Output = service.OutputFile is null ? ChildOutput.Capture : ChildOutput.File,
            OutputFile = service.OutputFile,
        };
    }
}
