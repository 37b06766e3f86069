namespace AppHb.Export.Metrics;

/// <summary>The Prometheus metric types this library exposes.</summary>
public enum MetricType
{
    Counter,
    Gauge,
    Histogram,
}

/// <summary>One metric family: a name, help, label names and a child per label-value combination
/// (prometheus-net's Collector&lt;TChild&gt;).</summary>
public abstract class Collector
{

    protected Collector(string name, string help, IReadOnlyList<string> labelNames)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(help);
        ArgumentNullException.ThrowIfNull(labelNames);
        if (!IsName(name, colon: true))
        {
            throw new ArgumentException($"metric name \"{name}\" is not valid: [a-zA-Z_:][a-zA-Z0-9_:]*", nameof(name));
        }

        foreach (var label in labelNames)
        {
            if (!IsName(label, colon: false) || label.StartsWith("__", StringComparison.Ordinal) || label == "le")
            {
                throw new ArgumentException($"label name \"{label}\" of {name} is not valid (or reserved)", nameof(labelNames));
            }
        }

        Name = name;
        Help = help;
        LabelNames = labelNames;
    }

    public string Name { get; }

    // [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, without ':' for labels. By hand: a Regex here would load the regex
    // engine into the daemon for a few dozen checks at start.
    private static bool IsName(string text, bool colon)
    {
        if (text.Length == 0 || char.IsAsciiDigit(text[0]))
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_' || (colon && c == ':')))
            {
                return false;
            }
        }

        return true;
    }

    public string Help { get; }

    public IReadOnlyList<string> LabelNames { get; }

    public abstract MetricType Type { get; }

    /// <summary>The children as (label values, their rendered text, child) in a stable order, for the serializer.</summary>
    internal abstract IEnumerable<(IReadOnlyList<string> Labels, string Rendered, object Child)> Children();

    /// <summary>Removes every child (for families rebuilt from a snapshot on each scrape).</summary>
    public abstract void Clear();
}

/// <summary>A family with one child per label-value combination.</summary>
public abstract class Collector<TChild> : Collector where TChild : class
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, Labelled> _children = new(StringComparer.Ordinal);
    private TChild? _unlabelled;

    protected Collector(string name, string help, IReadOnlyList<string> labelNames)
        : base(name, help, labelNames)
    {
    }

    // Created on first use, not in this constructor: a derived class's fields (a histogram's bounds) are not set yet.
    private TChild? UnlabelledOrNull => LabelNames.Count == 0 ? LazyInitializer.EnsureInitialized(ref _unlabelled, CreateChild) : null;

    /// <summary>The child for these label values (created on first use).</summary>
    public TChild WithLabels(params string[] labelValues)
    {
        ArgumentNullException.ThrowIfNull(labelValues);
        if (labelValues.Length != LabelNames.Count)
        {
            throw new ArgumentException($"{Name} has {LabelNames.Count} label(s) ({string.Join(", ", LabelNames)}), given {labelValues.Length} value(s)", nameof(labelValues));
        }

        if (UnlabelledOrNull is { } unlabelled)
        {
            return unlabelled;
        }

        var key = string.Join('\u001f', labelValues);
        lock (_gate)
        {
            if (!_children.TryGetValue(key, out var entry))
            {
                var labels = (string[])labelValues.Clone();
                // Rendered once per child: a family of a thousand clients is scraped far more often than it changes.
                entry = new Labelled(labels, TextSerializer.RenderLabels(LabelNames, labels), CreateChild());
                _children.Add(key, entry);
            }

            entry.Touched = true;
            return entry.Child;
        }
    }

    /// <summary>Removes the children not asked for with <see cref="WithLabels"/> since the previous call: a family that
    /// mirrors a snapshot (clients come and go) keeps its children, and their rendered labels, across scrapes.</summary>
    public void RemoveUntouched()
    {
        lock (_gate)
        {
            List<string>? stale = null;
            foreach (var (key, entry) in _children)
            {
                if (!entry.Touched)
                {
                    (stale ??= []).Add(key);
                }

                entry.Touched = false;
            }

            foreach (var key in stale ?? [])
            {
                _children.Remove(key);
            }
        }
    }

    /// <summary>The family's only child when it has no labels.</summary>
    protected TChild Unlabelled => UnlabelledOrNull ?? throw new InvalidOperationException($"{Name} has labels; use WithLabels");

    public override void Clear()
    {
        lock (_gate)
        {
            _children.Clear();
        }
    }

    protected abstract TChild CreateChild();

    internal override IEnumerable<(IReadOnlyList<string> Labels, string Rendered, object Child)> Children()
    {
        if (UnlabelledOrNull is { } unlabelled)
        {
            return [(Array.Empty<string>(), string.Empty, unlabelled)];
        }

        lock (_gate)
        {
            return _children.Values.Select(e => ((IReadOnlyList<string>)e.Labels, e.Rendered, (object)e.Child)).ToList();
        }
    }

    private sealed class Labelled(string[] labels, string rendered, TChild child)
    {
        public string[] Labels { get; } = labels;

        public string Rendered { get; } = rendered;

        public TChild Child { get; } = child;

        public bool Touched { get; set; }
    }
}
