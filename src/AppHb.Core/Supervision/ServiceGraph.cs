namespace AppHb.Core.Supervision;

/// <summary>The services of a node and what each requires: the order to start them (each after everything it
/// requires), to stop them (the reverse), and what must restart after a service restarts (everything that requires
/// it, directly or not). Built once per configuration; unknown names and cycles are refused with the path named.</summary>
public sealed class ServiceGraph
{
    private readonly Dictionary<string, IReadOnlyList<string>> _requires;
    private readonly Dictionary<string, List<string>> _requiredBy;
    private readonly Dictionary<string, int> _position;

    private ServiceGraph(Dictionary<string, IReadOnlyList<string>> requires, List<string> startOrder)
    {
        _requires = requires;
        StartOrder = startOrder;
        StopOrder = Enumerable.Reverse(startOrder).ToList();
        _position = startOrder.Select((name, index) => (name, index)).ToDictionary(p => p.name, p => p.index, StringComparer.Ordinal);
        _requiredBy = startOrder.ToDictionary(n => n, _ => new List<string>(), StringComparer.Ordinal);
        foreach (var (name, needs) in requires)
        {
            foreach (var need in needs)
            {
                _requiredBy[need].Add(name);
            }
        }
    }

    /// <summary>Every service, each after all it requires; services with no order between them by name.</summary>
    public IReadOnlyList<string> StartOrder { get; }

    /// <summary>The reverse of <see cref="StartOrder"/>: a service stops before what it requires.</summary>
    public IReadOnlyList<string> StopOrder { get; }

    /// <summary>What <paramref name="service"/> requires directly.</summary>
    public IReadOnlyList<string> Requires(string service) => _requires[service];

    /// <summary>Everything that requires <paramref name="service"/>, directly or through others, in start order:
    /// what must restart after it does.</summary>
    public IReadOnlyList<string> DependentsOf(string service)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>(_requiredBy[service]);
        while (pending.TryPop(out var next))
        {
            if (found.Add(next))
            {
                foreach (var further in _requiredBy[next])
                {
                    pending.Push(further);
                }
            }
        }

        return found.OrderBy(n => _position[n]).ToList();
    }

    /// <summary>Builds the graph.</summary>
    /// <param name="requires">Each service's name and the names it requires.</param>
    /// <exception cref="ServiceGraphException">Unknown names, self-requirements or cycles; every problem is listed.</exception>
    public static ServiceGraph Build(IReadOnlyDictionary<string, IReadOnlyList<string>> requires)
    {
        ArgumentNullException.ThrowIfNull(requires);
        var problems = new List<string>();
        var clean = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (name, needs) in requires.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var kept = new List<string>();
            foreach (var need in needs)
            {
                if (need == name)
                {
                    problems.Add($"service '{name}' requires itself");
                }
                else if (!requires.ContainsKey(need))
                {
                    problems.Add($"service '{name}' requires '{need}', which is not defined (defined: {string.Join(", ", requires.Keys.Order(StringComparer.Ordinal))})");
                }
                else if (!kept.Contains(need, StringComparer.Ordinal))
                {
                    kept.Add(need);
                }
            }

            clean[name] = kept;
        }

        problems.AddRange(FindCycles(clean));
        if (problems.Count > 0)
        {
            throw new ServiceGraphException(problems);
        }

        return new ServiceGraph(clean, TopologicalOrder(clean));
    }

    /// <summary>Kahn's algorithm with a sorted ready set, so equal inputs give equal orders on every node.</summary>
    private static List<string> TopologicalOrder(Dictionary<string, IReadOnlyList<string>> requires)
    {
        var waitingOn = requires.ToDictionary(kv => kv.Key, kv => kv.Value.Count, StringComparer.Ordinal);
        var requiredBy = requires.Keys.ToDictionary(k => k, _ => new List<string>(), StringComparer.Ordinal);
        foreach (var (name, needs) in requires)
        {
            foreach (var need in needs)
            {
                requiredBy[need].Add(name);
            }
        }

        var ready = new SortedSet<string>(waitingOn.Where(kv => kv.Value == 0).Select(kv => kv.Key), StringComparer.Ordinal);
        var order = new List<string>(requires.Count);
        while (ready.Count > 0)
        {
            var next = ready.Min!;
            ready.Remove(next);
            order.Add(next);
            foreach (var dependent in requiredBy[next])
            {
                if (--waitingOn[dependent] == 0)
                {
                    ready.Add(dependent);
                }
            }
        }

        return order;
    }

    /// <summary>Each cycle once, written as the path that closes it: "a -> b -> c -> a".</summary>
    private static List<string> FindCycles(Dictionary<string, IReadOnlyList<string>> requires)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 0 unvisited, 1 on the path, 2 done
        var path = new List<string>();
        var cycles = new List<string>();

        void Visit(string name)
        {
            state[name] = 1;
            path.Add(name);
            foreach (var need in requires[name])
            {
                var seen = state.GetValueOrDefault(need);
                if (seen == 1)
                {
                    var start = path.IndexOf(need);
                    cycles.Add("dependency cycle: " + string.Join(" -> ", path.Skip(start).Append(need)));
                }
                else if (seen == 0)
                {
                    Visit(need);
                }
            }

            path.RemoveAt(path.Count - 1);
            state[name] = 2;
        }

        foreach (var name in requires.Keys.Order(StringComparer.Ordinal))
        {
            if (state.GetValueOrDefault(name) == 0)
            {
                Visit(name);
            }
        }

        return cycles;
    }
}

/// <summary>The services' requirements do not form a valid graph; <see cref="Problems"/> lists each.</summary>
public sealed class ServiceGraphException : Exception
{
    public ServiceGraphException(IReadOnlyList<string> problems)
        : base(problems is null ? "invalid service graph" : string.Join("; ", problems)) => Problems = problems ?? [];

    public ServiceGraphException() : this(["invalid service graph"]) { }

    public ServiceGraphException(string message) : this([message]) { }

    public ServiceGraphException(string message, Exception innerException) : base(message, innerException) => Problems = [message];

    public IReadOnlyList<string> Problems { get; }
}
