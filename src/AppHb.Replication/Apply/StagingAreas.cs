using AppHb.Linux.Files;

namespace AppHb.Replication.Apply;

/// <summary>Where a replica's new file versions are staged: a staged file is renamed over the path it replaces, and a
/// rename cannot cross filesystems (File.Move would copy then delete, and a crash in between would leave a torn file
/// where a whole version was promised). So a version is staged on its target's filesystem: in the state directory's
/// <c>staging</c> when that is the one, otherwise in a <see cref="AreaName"/> directory at the top of the target's
/// filesystem (its mount point), made when first needed and listed in the state directory's <c>areas</c> file, so
/// that a restart finds what a crash left there. Never replicated (<see cref="Journal.ReplicatedScope"/> leaves the
/// name out). Not thread-safe: its applier's.</summary>
internal sealed class StagingAreas
{
    /// <summary>The name of a staging area on a filesystem other than the state directory's.</summary>
    public const string AreaName = Journal.ReplicatedScope.StagingAreaName;

    private const string ListName = "areas";
    private readonly string _list;
    private readonly (uint Major, uint Minor) _primaryDevice;
    private readonly Dictionary<(uint Major, uint Minor), string> _others = [];

    public StagingAreas(string stateDirectory)
    {
        Primary = Path.Combine(stateDirectory, "staging");
        Directory.CreateDirectory(Primary);
        _primaryDevice = FileSystems.DeviceOf(Primary);
        _list = Path.Combine(stateDirectory, ListName);
        if (File.Exists(_list))
        {
            foreach (var area in File.ReadAllLines(_list).Where(l => l.Length > 0 && Directory.Exists(l)))
            {
                _others.TryAdd(FileSystems.DeviceOf(area), area);
            }
        }
    }

    /// <summary>The state directory's staging area.</summary>
    public string Primary { get; }

    /// <summary>Every area: the primary first.</summary>
    public IEnumerable<string> All => _others.Values.Prepend(Primary);

    /// <summary>The filesystem of <see cref="Primary"/> (the state directory's).</summary>
    public (uint Major, uint Minor) PrimaryDevice => _primaryDevice;

    /// <summary>syncfs of every area's filesystem but <paramref name="besides"/> (one already synced; null: none).</summary>
    public void SyncFileSystems((uint Major, uint Minor)? besides = null)
    {
        if (_primaryDevice != besides)
        {
            DurableFile.SyncFileSystem(Primary);
        }

        foreach (var (device, area) in _others)
        {
            if (device != besides)
            {
                DurableFile.SyncFileSystem(area);
            }
        }
    }

    /// <summary>The area on the filesystem of <paramref name="target"/> (absolute; it may not exist yet: its nearest
    /// existing directory's filesystem), made and listed durably when it is the first on that filesystem.</summary>
    /// <exception cref="IOException">The area could not be made or listed (the message names it).</exception>
    public string For(string target)
    {
        var directory = Path.GetDirectoryName(target) ?? "/";
        while (!Directory.Exists(directory) && Path.GetDirectoryName(directory) is { } parent)
        {
            directory = parent;
        }

        var device = FileSystems.DeviceOf(directory);
        if (device == _primaryDevice)
        {
            return Primary;
        }

        if (_others.TryGetValue(device, out var known))
        {
            return known;
        }

        // The top of that filesystem: always there while it is mounted, and outside any one directory of it.
        var top = directory;
        while (Path.GetDirectoryName(top) is { } up && FileSystems.DeviceOf(up) == device)
        {
            top = up;
        }

        var area = Path.Combine(top, AreaName);
        Directory.CreateDirectory(area);
        DurableFile.SyncDirectory(top);
        _others[device] = area;
        DurableFile.Replace(_list, System.Text.Encoding.UTF8.GetBytes(string.Concat(_others.Values.Select(a => a + "\n"))));
        return area;
    }
}
