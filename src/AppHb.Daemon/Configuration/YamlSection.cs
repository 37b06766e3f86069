using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace AppHb.Daemon.Configuration;

/// <summary>One mapping of the configuration, read key by key. A value comes from the user's file when present,
/// else from the embedded defaults; a bad value is recorded as an error with the user file's position, and a safe
/// placeholder is returned so that every error in the file is reported in one run.</summary>
internal sealed class YamlSection
{
    private readonly string _source;
    private readonly string _path;
    private readonly YamlMappingNode? _user;
    private readonly YamlMappingNode? _defaults;
    private readonly List<string> _errors;

    public YamlSection(string source, string path, YamlMappingNode? user, YamlMappingNode? defaults, List<string> errors)
    {
        _source = source;
        _path = path;
        _user = user;
        _defaults = defaults;
        _errors = errors;
    }

    /// <summary>Whether the user's file gives this key.</summary>
    public bool IsSet(string key) => Find(_user, key) is not null;

    public YamlSection Child(string key)
    {
        var user = Find(_user, key);
        if (user is not null and not YamlMappingNode && !IsNull(user))
        {
            Error(user, key, $"must be a mapping of keys, not {Describe(user)}");
            user = null;
        }

        return new YamlSection(_source, Qualify(key), user as YamlMappingNode, Find(_defaults, key) as YamlMappingNode, _errors);
    }

    public string String(string key, Func<string, string?>? validate = null) =>
        Read(key, "a string", (node, text) => validate?.Invoke(text) is { } problem ? Fail<string>(node, key, problem) : text, string.Empty);

    public string? OptionalString(string key) => Find(_user, key) is null && Find(_defaults, key) is null ? null : String(key);

    public int Integer(string key, int min, int max) => Read(key, "an integer", (node, text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : Fail<int>(node, key, $"\"{text}\" is not an integer between {min} and {max}"), min);

    public uint? OptionalUnsigned(string key) => Find(_user, key) is null && Find(_defaults, key) is null
        ? null
        : Read<uint?>(key, "a number", (node, text) =>
            uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
                ? value
                : Fail<uint?>(node, key, $"\"{text}\" is not a non-negative integer"), 0);

    public bool Boolean(string key) => Read(key, "true or false", (node, text) => text switch
    {
        "true" or "yes" or "on" => true,
        "false" or "no" or "off" => false,
        _ => Fail<bool>(node, key, $"\"{text}\" is not a boolean; use true or false"),
    }, false);

    public TimeSpan Duration(string key, TimeSpan min, TimeSpan max) => Read(key, "a duration", (node, text) =>
    {
        if (!TryParseDuration(text, out var value))
        {
            return Fail<TimeSpan>(node, key, $"\"{text}\" is not a duration; use a number with a unit: ms, s, m or h (e.g. 500ms, 10s, 2m)");
        }

        return value >= min && value <= max
            ? value
            : Fail<TimeSpan>(node, key, $"{text} is out of range; it must be between {Format(min)} and {Format(max)}");
    }, min);

    public T Choice<T>(string key, IReadOnlyDictionary<string, T> choices) where T : struct => Read(key, "a choice", (node, text) =>
        choices.TryGetValue(text, out var value)
            ? value
            : Fail<T>(node, key, $"\"{text}\" is not valid; use one of: {string.Join(", ", choices.Keys)}"), default);

    public UnixFileMode FileMode(string key) => Read(key, "an octal mode", (node, text) =>
    {
        try
        {
            var bits = Convert.ToInt32(text, 8);
            if (bits is >= 0 and <= 0x1FF)
            {
                return (UnixFileMode)bits;
            }
        }
        catch (FormatException)
        {
        }

        return Fail<UnixFileMode>(node, key, $"\"{text}\" is not an octal permission mode like \"0660\" (quote it in YAML)");
    }, UnixFileMode.None);

    /// <summary>The keys the user's mapping gives, in file order (for sections keyed by name, like services).</summary>
    public IReadOnlyList<string> UserKeys() => _user is null ? [] : _user.Children.Keys.Select(k => (k as YamlScalarNode)?.Value ?? "?").ToList();

    /// <summary>A list of strings: a YAML sequence of scalars, or one scalar split on spaces.</summary>
    public IReadOnlyList<string>? OptionalStringList(string key)
    {
        var node = Find(_user, key) ?? Find(_defaults, key);
        switch (node)
        {
            case null:
                return null;
            case YamlScalarNode scalar when IsNull(scalar):
                return null;
            case YamlScalarNode scalar:
                return (scalar.Value ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            case YamlSequenceNode sequence:
                var items = new List<string>();
                foreach (var item in sequence.Children)
                {
                    if (item is YamlScalarNode { Value: { } text })
                    {
                        items.Add(text);
                    }
                    else
                    {
                        Error(item, key, $"list items must be strings, found {Describe(item)}");
                    }
                }

                return items;
            default:
                Error(node, key, $"expected a list of strings, found {Describe(node)}");
                return null;
        }
    }

    /// <summary>A mapping of string to string (environment variables), in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> StringMap(string key)
    {
        var node = Find(_user, key);
        if (node is null || IsNull(node))
        {
            return [];
        }

        if (node is not YamlMappingNode mapping)
        {
            Error(node, key, $"expected a mapping of NAME: value, found {Describe(node)}");
            return [];
        }

        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var (k, v) in mapping.Children)
        {
            if (k is YamlScalarNode { Value: { Length: > 0 } name } && v is YamlScalarNode value)
            {
                pairs.Add(new(name, value.Value ?? string.Empty));
            }
            else
            {
                Error(k, key, "entries must be NAME: value with a scalar value");
            }
        }

        return pairs;
    }

    /// <summary>A sequence of mappings (like checks), each read as its own section named key[i].</summary>
    public IReadOnlyList<YamlSection> MappingList(string key)
    {
        var node = Find(_user, key);
        if (node is null || IsNull(node))
        {
            return [];
        }

        if (node is not YamlSequenceNode sequence)
        {
            Error(node, key, $"expected a list of mappings, found {Describe(node)}");
            return [];
        }

        var sections = new List<YamlSection>();
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            if (sequence.Children[i] is YamlMappingNode item)
            {
                sections.Add(new YamlSection(_source, $"{Qualify(key)}[{i}]", item, null, _errors));
            }
            else
            {
                Error(sequence.Children[i], key, $"item {i} must be a mapping, found {Describe(sequence.Children[i])}");
            }
        }

        return sections;
    }

    /// <summary>The dotted path of this section (services.web).</summary>
    public string Path => _path;

    /// <summary>Reports keys in the user's mapping that this section does not define.</summary>
    public void RejectUnknownKeys(params string[] known)
    {
        if (_user is null)
        {
            return;
        }

        foreach (var (keyNode, _) in _user.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "?";
            if (!known.Contains(key, StringComparer.Ordinal))
            {
                Error(keyNode, key, $"unknown key; valid keys here are: {string.Join(", ", known)}");
            }
        }
    }

    public void Error(YamlNode node, string key, string problem) =>
        _errors.Add($"{_source}:{node.Start.Line}:{node.Start.Column}: {Qualify(key)}: {problem}");

    /// <summary>An error about the section as a whole (cross-field rules), placed at the key if the user set it.</summary>
    public void Error(string key, string problem)
    {
        var node = Find(_user, key);
        _errors.Add(node is null ? $"{_source}: {Qualify(key)}: {problem}" : $"{_source}:{node.Start.Line}:{node.Start.Column}: {Qualify(key)}: {problem}");
    }

    internal static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        var units = new (string Suffix, double Ms)[] { ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000) };
        foreach (var (suffix, ms) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(text[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)
                && !(suffix == "m" && text.EndsWith("ms", StringComparison.Ordinal)))
            {
                value = TimeSpan.FromMilliseconds(number * ms);
                return true;
            }
        }

        return false;
    }

    private static string Format(TimeSpan span) => span.TotalMilliseconds < 1000 ? $"{span.TotalMilliseconds:0}ms"
        : span.TotalSeconds < 60 ? $"{span.TotalSeconds:0.###}s" : span.TotalMinutes < 60 ? $"{span.TotalMinutes:0.##}m" : $"{span.TotalHours:0.##}h";

    private T Read<T>(string key, string expected, Func<YamlNode, string, T> parse, T fallback)
    {
        var node = Find(_user, key);
        if (node is null || IsNull(node))
        {
            node = Find(_defaults, key);
            if (node is null)
            {
                _errors.Add($"{_source}: {Qualify(key)}: required ({expected})");
                return fallback;
            }
        }

        if (node is not YamlScalarNode scalar)
        {
            Error(node, key, $"expected {expected}, found {Describe(node)}");
            return fallback;
        }

        return parse(node, scalar.Value ?? string.Empty);
    }

    private T Fail<T>(YamlNode node, string key, string problem)
    {
        Error(node, key, problem);
        return default!;
    }

    private static YamlNode? Find(YamlMappingNode? mapping, string key) =>
        mapping is not null && mapping.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private static bool IsNull(YamlNode node) => node is YamlScalarNode { Value: null or "" or "~" or "null", Style: not (YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted) };

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        _ => "a scalar",
    };

    private string Qualify(string key) => _path.Length == 0 ? key : $"{_path}.{key}";
}
