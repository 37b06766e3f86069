namespace AppHb.Core.Supervision;

/// <summary>What a reload changes: services gone from the configuration, services whose definition changed (their
/// new definitions), and new ones. A service whose canonical form is unchanged is in none of them and keeps running.</summary>
public sealed record ReloadPlan(IReadOnlyList<string> Removed, IReadOnlyList<ServiceDefinition> Changed, IReadOnlyList<ServiceDefinition> Added)
{
    public bool IsEmpty => Removed.Count == 0 && Changed.Count == 0 && Added.Count == 0;

    /// <summary>Compares by name, then by <see cref="ServiceDefinition.Canonical"/>; lists keep the new file's order
    /// (removals in the old one's).</summary>
    public static ReloadPlan Compute(IEnumerable<ServiceDefinition> current, IReadOnlyList<ServiceDefinition> next)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(next);
        var before = current.ToDictionary(d => d.Name, StringComparer.Ordinal);
        var after = next.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        return new ReloadPlan(
            before.Keys.Where(name => !after.Contains(name)).Order(StringComparer.Ordinal).ToList(),
            next.Where(d => before.TryGetValue(d.Name, out var old) && old.Canonical() != d.Canonical()).ToList(),
            next.Where(d => !before.ContainsKey(d.Name)).ToList());
    }
}
