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
        NameUtf8 = System.Text.Encoding.UTF8.GetBytes(name);
        Help = help;
        LabelNames = labelNames;
    }

    public string Name { get; }

    /// <summary>The name as the exposition writes it (ASCII by the rule above).</summary>
    internal byte[] NameUtf8 { get; }

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
    internal abstract IReadOnlyList<(IReadOnlyList<string> Labels, byte[] Rendered, object Child)> Children();

    /// <summary>Removes every child (for families rebuilt from a snapshot on each scrape).</summary>
    public abstract void Clear();
}

/// <summary>A family with one child per label-value combination.</summary>
public abstract class Collector<TChild> : Collector where TChild : class
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string[], Labelled> _children;
    private readonly Dictionary<string[], Labelled>.AlternateLookup<ReadOnlySpan<string>> _lookup;
    // The children in label order, rebuilt only when one comes or goes: a family of a thousand clients is scraped
    // many times between two changes, and each scrape would otherwise sort it again.
    private (IReadOnlyList<string> Labels, byte[] Rendered, object Child)[]? _ordered;
    private TChild? _unlabelled;

    protected Collector(string name, string help, IReadOnlyList<string> labelNames)
        : base(name, help, labelNames)
    {
        _children = new Dictionary<string[], Labelled>(LabelValuesComparer.Instance);
        _lookup = _children.GetAlternateLookup<ReadOnlySpan<string>>();
    }

    // Created on first use, not in this constructor: a derived class's fields (a histogram's bounds) are not set yet.
    private TChild? UnlabelledOrNull => LabelNames.Count == 0 ? LazyInitializer.EnsureInitialized(ref _unlabelled, CreateChild) : null;

    /// <summary>The child for these label values (created on first use). Looked up by the values themselves, without
    /// an array or a joined key per call: a scrape asks for thousands of children.</summary>
    public TChild WithLabels(params ReadOnlySpan<string> labelValues)
    {
        if (labelValues.Length != LabelNames.Count)
        {
            throw new ArgumentException($"{Name} has {LabelNames.Count} label(s) ({string.Join(", ", LabelNames)}), given {labelValues.Length} value(s)", nameof(labelValues));
        }

        if (UnlabelledOrNull is { } unlabelled)
        {
            return unlabelled;
        }

        lock (_gate)
        {
            if (!_lookup.TryGetValue(labelValues, out var entry))
            {
                foreach (var value in labelValues)
                {
                    ArgumentNullException.ThrowIfNull(value, nameof(labelValues));
                }

                var labels = labelValues.ToArray();
                // Rendered once per child: a family of a thousand clients is scraped far more often than it changes.
                entry = new Labelled(labels, TextSerializer.RenderLabels(LabelNames, labels), CreateChild());
                _children.Add(labels, entry);
                _ordered = null;
            }

            return entry.Child;
        }
    }

    /// <summary>Removes the child with these label values, if there is one: a family that mirrors a snapshot (clients
    /// come and go) keeps the others, and their rendered labels, across scrapes.</summary>
    public bool Remove(params ReadOnlySpan<string> labelValues)
    {
        lock (_gate)
        {
            if (!_lookup.Remove(labelValues, out _, out _))
            {
                return false;
            }

            _ordered = null;
            return true;
        }
    }

    /// <summary>The family's only child when it has no labels.</summary>
    protected TChild Unlabelled => UnlabelledOrNull ?? throw new InvalidOperationException($"{Name} has labels; use WithLabels");

    public override void Clear()
    {
        lock (_gate)
        {
            _children.Clear();
            _ordered = null;
        }
    }

    protected abstract TChild CreateChild();

    internal override IReadOnlyList<(IReadOnlyList<string> Labels, byte[] Rendered, object Child)> Children()
    {
        if (UnlabelledOrNull is { } unlabelled)
        {
            return [(Array.Empty<string>(), Array.Empty<byte>(), unlabelled)];
        }

        lock (_gate)
        {
            if (_ordered is null)
            {
                var entries = _children.Values.ToArray();
                Array.Sort(entries, static (a, b) => LabelValuesComparer.Compare(a.Labels, b.Labels));
                _ordered = Array.ConvertAll(entries, e => ((IReadOnlyList<string>)e.Labels, e.Rendered, (object)e.Child));
            }

            // Replaced, never changed in place, so the serializer may read it outside the lock.
            return _ordered;
        }
    }

    private sealed class Labelled(string[] labels, byte[] rendered, TChild child)
    {
        public string[] Labels { get; } = labels;

        /// <summary>The label text as UTF-8, ready for the exposition.</summary>
        public byte[] Rendered { get; } = rendered;

        public TChild Child { get; } = child;
    }
}

/// <summary>Label values compared element by element, ordinally; spans of them find arrays of them.</summary>
internal sealed class LabelValuesComparer : IEqualityComparer<string[]>, IAlternateEqualityComparer<ReadOnlySpan<string>, string[]>
{
    public static LabelValuesComparer Instance { get; } = new();

    public bool Equals(string[]? x, string[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && Equals(x.AsSpan(), y));

    public int GetHashCode(string[] obj) => GetHashCode(obj.AsSpan());

    public bool Equals(ReadOnlySpan<string> alternate, string[] other)
    {
        if (alternate.Length != other.Length)
        {
            return false;
        }

        for (var i = 0; i < alternate.Length; i++)
        {
            if (!string.Equals(alternate[i], other[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    public int GetHashCode(ReadOnlySpan<string> alternate)
    {
        var hash = default(HashCode);
        foreach (var value in alternate)
        {
            hash.Add(value, StringComparer.Ordinal);
        }

        return hash.ToHashCode();
    }

    public string[] Create(ReadOnlySpan<string> alternate) => alternate.ToArray();

    /// <summary>The exposition's order: by the first label value, then the next (ordinal).</summary>
    public static int Compare(string[] x, string[] y)
    {
        for (var i = 0; i < Math.Min(x.Length, y.Length); i++)
        {
            var order = string.CompareOrdinal(x[i], y[i]);
            if (order != 0)
            {
                return order;
            }
        }

        return x.Length.CompareTo(y.Length);
    }
}
