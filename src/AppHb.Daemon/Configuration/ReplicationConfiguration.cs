namespace AppHb.Daemon.Configuration;

/// <summary>Replication of the group's data to the standby (apphbd.yaml(5), "replication"): absent means none.</summary>
/// <param name="Path">The replicated directory: the same path on both nodes; written by the group on the active
/// node, only by replication on the standby. With <paramref name="Members"/>: the directory above them all, which
/// journal paths are relative to (not replicated itself).</param>
/// <param name="Exclude">Paths under <paramref name="Path"/> (relative) never replicated, nor anything under them.</param>
/// <param name="Port">The TCP port on the dedicated link's addresses (the standby listens, the active connects).</param>
/// <param name="Journal">The journal file on the active node (outside the replicated directory).</param>
/// <param name="StateDirectory">The standby's staging area and redo log: on the replicated directory's filesystem
/// (staged files are renamed into it), outside it.</param>
/// <param name="BarrierTimeout">How long `apphbctl replication sync` waits for the peer before it fails.</param>
/// <param name="JournalLimitMiB">The journal's size limit: past it, it starts again from its last record once the
/// peer has everything (or is away; it is then resynced when it returns).</param>
/// <param name="ResyncRateMiB">At most this many MiB a second of a difference resync go over the dedicated link;
/// 0: no limit.</param>
/// <param name="AllowLan">Whether replication may go over the LAN link when the dedicated one does not connect (it
/// is encrypted and authenticated either way); false: the dedicated link only, as the documents ask by default.</param>
/// <param name="Synchronous">mode: sync. A controlled hand-over (switchover, failback, standby on the active node)
/// is refused unless the peer confirms every change first (the barrier), so the group never moves to a node without
/// its data while both nodes are up. async (false, the default): it goes on, said by a hand-over-unsynced event.</param>
/// <param name="BlockSizeKiB">The block a changed file is compared and shipped in (and a resync hashes): smaller
/// ships less of a small change (a database's 4 KiB pages) for more hashes to keep and compare.</param>
/// <param name="Compress">Whether the active deflates what it sends when that makes it smaller: for a dedicated
/// link slower than a core can deflate (a routed or rate-limited one); on a gigabit crossover cable it costs more CPU
/// than it saves time. Off by default.</param>
/// <param name="Members">`paths:` (relative to <paramref name="Path"/>): the directories and single files
/// replicated, in one journal whose sequence orders them all; null or empty: the whole of <paramref name="Path"/>.</param>
public sealed record ReplicationOptions(string Path, IReadOnlyList<string> Exclude, int Port, string Journal, string StateDirectory, TimeSpan BarrierTimeout,
    int JournalLimitMiB = ReplicationOptions.DefaultJournalLimitMiB, int ResyncRateMiB = 0, bool AllowLan = false, bool Synchronous = false,
    int BlockSizeKiB = ReplicationOptions.DefaultBlockSizeKiB, IReadOnlyList<string>? Members = null, bool Compress = false)
{
    public const int DefaultJournalLimitMiB = 1024;

    public const int DefaultBlockSizeKiB = AppHb.Replication.Journal.JournalCodec.DefaultBlockSize / 1024;

    public const int DefaultPort = 7791;

    /// <summary>Everything, as text: a reload compares this.</summary>
    public string Canonical() => string.Join('|', Path, string.Join(',', Exclude), Port, Journal, StateDirectory, BarrierTimeout, JournalLimitMiB, ResyncRateMiB, AllowLan, Synchronous, BlockSizeKiB,
        string.Join(',', Members ?? []), Compress);

    /// <summary>What is replicated, as the engine takes it.</summary>
    public AppHb.Replication.Journal.ReplicatedScope Scope() => Members is { Count: > 0 }
        ? AppHb.Replication.Journal.ReplicatedScope.Of(Path, Members, IsExcluded)
        : AppHb.Replication.Journal.ReplicatedScope.Whole(Path, IsExcluded);

    /// <summary>For messages: the directory, or the replicated paths.</summary>
    public string Shown => Members is { Count: > 0 } ? string.Join(", ", Members.Select(m => System.IO.Path.Combine(Path, m))) : Path;

    /// <summary>Whether a path relative to <see cref="Path"/> is excluded.</summary>
    public bool IsExcluded(string relative) =>
        Exclude.Any(e => relative == e || relative.StartsWith(e + "/", StringComparison.Ordinal));
}

/// <summary>Reads and checks the <c>replication:</c> section. Every error names file:line:column and key.</summary>
internal static class ReplicationConfiguration
{
    private static readonly Dictionary<string, bool> Modes = new(StringComparer.Ordinal)
    {
        ["async"] = false,
        ["sync"] = true,
    };

    public static ReplicationOptions? Read(YamlSection root)
    {
        if (!root.IsSet("replication"))
        {
            return null;
        }

        var section = root.Child("replication");
        section.RejectUnknownKeys("path", "paths", "exclude", "port", "journal", "journal-limit-mib", "state-directory", "barrier-timeout", "resync-rate-mib", "allow-lan", "compress", "mode",
            "block-size-kib");
        if (!root.IsSet("cluster"))
        {
            section.Error("path", "replication needs a cluster section: the peer, and the dedicated link it replicates over");
        }

        if (section.IsSet("paths"))
        {
            return ReadPaths(section);
        }

        // Null when refused (the error is recorded): the other keys are still checked.
        var path = ((string?)section.String("path", Absolute) ?? "/invalid").TrimEnd('/');
        var exclude = (section.OptionalStringList("exclude") ?? []).Select(e => e.TrimEnd('/')).ToList();
        foreach (var e in exclude.Where(e => AppHb.Replication.Journal.JournalPath.Problem(e) is not null))
        {
            section.Error("exclude", $"\"{e}\": {AppHb.Replication.Journal.JournalPath.Problem(e)}");
        }

        var parent = System.IO.Path.GetDirectoryName(path) ?? "/";
        var name = System.IO.Path.GetFileName(path);
        var journal = section.IsSet("journal") ? section.String("journal", Absolute) : $"/var/lib/apphb/replication/{name}.journal";
        var state = section.IsSet("state-directory") ? section.String("state-directory", Absolute) : System.IO.Path.Combine(parent, $".apphb-replica-{name}");
        RefuseInside(section, journal, state, [path], "directory");

        return ReadRest(section, path, exclude, journal!, state!, null);
    }

    /// <summary>The keys both forms share, and the options.</summary>
    private static ReplicationOptions ReadRest(YamlSection section, string root, List<string> exclude, string journal, string state, IReadOnlyList<string>? members)
    {
        var port = section.IsSet("port") ? section.Integer("port", 1, 65535) : ReplicationOptions.DefaultPort;
        var barrierTimeout = section.IsSet("barrier-timeout")
            ? section.Duration("barrier-timeout", TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1))
            : TimeSpan.FromSeconds(5);
        var limit = section.IsSet("journal-limit-mib") ? section.Integer("journal-limit-mib", 1, 1 << 20) : ReplicationOptions.DefaultJournalLimitMiB;
        var rate = section.IsSet("resync-rate-mib") ? section.Integer("resync-rate-mib", 0, 1 << 20) : 0;
        var allowLan = section.IsSet("allow-lan") && section.Boolean("allow-lan");
        var synchronous = section.IsSet("mode") && section.Choice("mode", Modes);
        var blockSize = section.IsSet("block-size-kib")
            ? section.Integer("block-size-kib", 1, AppHb.Replication.Journal.JournalCodec.MaxBlockSize / 1024)
            : ReplicationOptions.DefaultBlockSizeKiB;
        var compress = section.IsSet("compress") && section.Boolean("compress");
        return new ReplicationOptions(root, exclude, port, journal, state, barrierTimeout, limit, rate, allowLan, synchronous, blockSize, members, compress);
    }

    /// <summary>`paths:`: several directories and single files in one journal. Journal paths are relative to the
    /// deepest directory above them all; excludes are absolute, each under one of them.</summary>
    private static ReplicationOptions ReadPaths(YamlSection section)
    {
        if (section.IsSet("path"))
        {
            section.Error("path", "give either path (one directory) or paths (directories and files), not both");
        }

        var paths = (section.OptionalStringList("paths") ?? []).Select(p => p.TrimEnd('/')).ToList();
        if (paths.Count == 0)
        {
            section.Error("paths", "name at least one directory or file to replicate");
            paths = ["/invalid/none"];
        }

        foreach (var bad in paths.Where(p => Absolute(p) is not null).ToList())
        {
            section.Error("paths", $"\"{bad}\": {Absolute(bad)}");
            paths.Remove(bad);
        }

        paths = paths.Count == 0 ? ["/invalid/none"] : paths;
        var root = CommonParent(paths);
        string Relative(string path) => root == "/" ? path[1..] : path[(root.Length + 1)..];
        var members = paths.Select(Relative).ToList();
        for (var i = 0; i < paths.Count; i++)
        {
            for (var j = 0; j < i; j++)
            {
                var (inner, outer) = paths[i].Length >= paths[j].Length ? (paths[i], paths[j]) : (paths[j], paths[i]);
                if (inner == outer || inner.StartsWith(outer + "/", StringComparison.Ordinal))
                {
                    section.Error("paths", inner == outer ? $"\"{inner}\" is given twice" : $"\"{inner}\" is under \"{outer}\": name the outer one only (with an exclude for what it should not replicate)");
                }
            }
        }

        var exclude = new List<string>();
        foreach (var e in (section.OptionalStringList("exclude") ?? []).Select(e => e.TrimEnd('/')))
        {
            if (!paths.Any(p => e.StartsWith(p + "/", StringComparison.Ordinal)))
            {
                section.Error("exclude", $"\"{e}\": with paths, an exclude is an absolute path under one of them");
                continue;
            }

            exclude.Add(Relative(e));
        }

        var journal = section.IsSet("journal") ? section.String("journal", Absolute) : "/var/lib/apphb/replication/paths.journal";
        // Any filesystem: a path on another one has its own staging area at the top of its filesystem.
        var state = section.IsSet("state-directory") ? section.String("state-directory", Absolute) : "/var/lib/apphb/replication/paths.state";
        RefuseInside(section, journal, state, paths, "path");

        return ReadRest(section, root, exclude, journal ?? "/invalid/journal", state ?? "/invalid/state", members);
    }

    /// <summary>Refuses the journal or the state directory inside a replicated <paramref name="what"/>: it would
    /// replicate itself. A value refused already (null) is not looked at.</summary>
    private static void RefuseInside(YamlSection section, string? journal, string? state, IReadOnlyList<string> replicated, string what)
    {
        foreach (var (key, value) in new[] { ("journal", journal), ("state-directory", state) })
        {
            if (value is not null && replicated.FirstOrDefault(p => p.Length > 1 && (value == p || value.StartsWith(p + "/", StringComparison.Ordinal))) is { } holder)
            {
                section.Error(key, $"\"{value}\" is inside the replicated {what} {holder}: it would replicate itself");
            }
        }
    }

    /// <summary>The deepest directory above every path (each path's parent at most).</summary>
    private static string CommonParent(IReadOnlyList<string> paths)
    {
        var parts = paths.Select(p => p.Split('/', StringSplitOptions.RemoveEmptyEntries)).ToList();
        var common = new List<string>();
        for (var i = 0; parts.All(p => i < p.Length - 1 && p[i] == parts[0][i]); i++)
        {
            common.Add(parts[0][i]);
        }

        return "/" + string.Join('/', common);
    }

    private static string? Absolute(string path) =>
        path.StartsWith('/') && path.TrimEnd('/').Length > 0 ? null : "must be an absolute path, not the root";
}
