namespace AppHb.Replication.Journal;

/// <summary>What one replication replicates, in one journal (so one sequence orders every change): either a whole
/// directory (the root), or <b>members</b> under a root, each a directory or a single file (e.g. /srv/data and
/// /etc/apphb under /); less the excluded paths. Journal paths are relative to <see cref="Root"/>. The directories
/// above the members (<see cref="Leads"/>) are walked and watched to reach them, never replicated themselves (their
/// other entries are neither walked nor watched); a record that names a path outside every member is refused by the
/// replica, so that a damaged or forged record can never write beside the members.</summary>
public sealed class ReplicatedScope
{
    private readonly string[] _members;
    private readonly Func<string, bool>? _excluded;

    private ReplicatedScope(string root, string[] members, Func<string, bool>? excluded)
    {
        Root = Path.GetFullPath(root).TrimEnd('/') is { Length: > 0 } trimmed ? trimmed : "/";
        _members = members;
        _excluded = excluded;
        BarrierDirectories = members.Length == 0
            ? [string.Empty]
            : [.. members.Concat(members.Select(JournalPath.Parent)).Append(string.Empty).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>Everything under <paramref name="root"/> but what <paramref name="excluded"/> says yes to (paths
    /// relative to the root; what is under an excluded path is asked too).</summary>
    public static ReplicatedScope Whole(string root, Func<string, bool>? excluded = null) =>
        new(root ?? throw new ArgumentNullException(nameof(root)), [], excluded);

    /// <summary>Only <paramref name="members"/> (relative to <paramref name="root"/>, each a directory or a single
    /// file) and what is under them, but what <paramref name="excluded"/> says yes to.</summary>
    /// <exception cref="ArgumentException">No member, a member that is not a journal path, or one at or under another.</exception>
    public static ReplicatedScope Of(string root, IEnumerable<string> members, Func<string, bool>? excluded = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        var list = (members ?? throw new ArgumentNullException(nameof(members))).ToArray();
        if (list.Length == 0)
        {
            throw new ArgumentException("a scope of members needs at least one", nameof(members));
        }

        for (var i = 0; i < list.Length; i++)
        {
            var member = list[i];
            if (JournalPath.Problem(member) is { } problem)
            {
                throw new ArgumentException($"member {problem}", nameof(members));
            }

            for (var j = 0; j < list.Length; j++)
            {
                if (j != i && JournalPath.IsAtOrUnder(member, list[j]) && (member != list[j] || j < i))
                {
                    throw new ArgumentException($"member \"{member}\" is {(member == list[j] ? "given twice" : $"under member \"{list[j]}\"")}", nameof(members));
                }
            }
        }

        return new ReplicatedScope(root, list, excluded);
    }

    /// <summary>The directory journal paths are relative to (absolute, no trailing '/').</summary>
    public string Root { get; }

    /// <summary>The members, relative to <see cref="Root"/>; empty when the whole root is replicated.</summary>
    public IReadOnlyList<string> Members => _members;

    public bool IsWhole => _members.Length == 0;

    /// <summary>Where the barrier's own files may be made (relative to the root), first choice first: the root for a
    /// whole directory; otherwise each member (one may be a single file, or not made yet: the first that is a
    /// directory then), each member's parent, the root. All are watched; whichever exists when a barrier is made.</summary>
    public IReadOnlyList<string> BarrierDirectories { get; }

    /// <summary>Whether <paramref name="path"/> is one of the barrier's files (never replicated): named so, directly
    /// in one of <see cref="BarrierDirectories"/>.</summary>
    public bool IsBarrierFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var slash = path.LastIndexOf('/');
        var name = slash < 0 ? path : path[(slash + 1)..];
        if (!name.StartsWith(Capture.CapturePump.BarrierFilePrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var parent = JournalPath.Parent(path);
        return parent.Length == 0 || (!IsWhole && (Leads(parent) || _members.Contains(parent, StringComparer.Ordinal)));
    }

    /// <summary>Whether <paramref name="path"/> is at or under a member (whatever the exclusions say): what the
    /// replica may be asked to change.</summary>
    public bool Holds(string path) => IsWhole || _members.Any(m => JournalPath.IsAtOrUnder(path, m));

    /// <summary>Whether <paramref name="path"/> is replicated: held, not excluded, not the barrier's, not in a
    /// replica's staging area (one at the top of a filesystem may be in a member: <see cref="StagingAreaName"/>).</summary>
    public bool Replicates(string path) => Holds(path) && !IsBarrierFile(path) && !IsStagingArea(path) && _excluded?.Invoke(path) != true;

    /// <summary>What a replica's staging area on a filesystem other than its state directory's is called (at the top
    /// of that filesystem, so perhaps in a member): never replicated.</summary>
    public const string StagingAreaName = ".apphb-staging";

    /// <summary>Whether <paramref name="path"/> is, or is in, a directory named as a replica's staging area.</summary>
    public static bool IsStagingArea(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        const string Name = StagingAreaName;
        return path == Name || path.StartsWith(Name + "/", StringComparison.Ordinal) || path.EndsWith("/" + Name, StringComparison.Ordinal)
            || path.Contains("/" + Name + "/", StringComparison.Ordinal);
    }

    /// <summary>Whether <paramref name="path"/> is a directory above a member ("" being the root): walked and watched
    /// to reach the members, never replicated itself.</summary>
    public bool Leads(string path) => !IsWhole && (path.Length == 0 || _members.Any(m => m.StartsWith(path + "/", StringComparison.Ordinal)));

    /// <summary>Whether the capture watches (and the walks enter) <paramref name="path"/>: held, or leading to a member.</summary>
    public bool Watches(string path) => Holds(path) || Leads(path);

    /// <summary>For messages: the root, or the members as absolute paths.</summary>
    public override string ToString() => IsWhole ? Root : string.Join(", ", _members.Select(Full));

    /// <summary>The absolute path of <paramref name="relative"/>.</summary>
    public string Full(string relative) => relative.Length == 0 ? Root : Path.Combine(Root, relative);

}
