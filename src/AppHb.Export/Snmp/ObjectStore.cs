namespace AppHb.Export.Snmp;

/// <summary>An immutable snapshot of a MIB subtree kept sorted by OID (the shape of SharpSnmpLib's ObjectStore): Get is
/// one binary search, GetNext another. Built per refresh by <see cref="ObjectStoreBuilder"/>, then read by any number
/// of requests without locks.</summary>
public sealed class ObjectStore
{
    private readonly ObjectIdentifier[] _names;
    private readonly ISnmpData[] _values;
    private readonly ObjectIdentifier[] _objects;

    internal ObjectStore(ObjectIdentifier[] names, ISnmpData[] values, ObjectIdentifier[] objects)
    {
        _names = names;
        _values = values;
        _objects = objects;
    }

    public static ObjectStore Empty { get; } = new([], [], []);

    public int Count => _names.Length;

    /// <summary>The value at exactly this name, or noSuchInstance (the object exists, this instance does not) or
    /// noSuchObject (RFC 3416 section 4.2.1).</summary>
    public ISnmpData Get(ObjectIdentifier name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var at = Array.BinarySearch(_names, name);
        if (at >= 0)
        {
            return _values[at];
        }

        foreach (var candidate in _objects)
        {
            if (name.StartsWith(candidate) && name.Length > candidate.Length)
            {
                return SnmpException.NoSuchInstance;
            }
        }

        return SnmpException.NoSuchObject;
    }

    /// <summary>The first variable after <paramref name="start"/> (or at it, when <paramref name="include"/>) and before
    /// <paramref name="end"/> (a null OID: no bound), as an AgentX search range asks (RFC 2741 section 5.2); null at the
    /// end of the view.</summary>
    public Variable? GetNext(ObjectIdentifier start, bool include, ObjectIdentifier end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        var at = Array.BinarySearch(_names, start);
        var index = at >= 0 ? (include ? at : at + 1) : ~at;
        if (index >= _names.Length || (!end.IsNull && _names[index].CompareTo(end) >= 0))
        {
            return null;
        }

        return new Variable(_names[index], _values[index]);
    }

    /// <summary>Every variable in order (a walk).</summary>
    public IEnumerable<Variable> Variables()
    {
        for (var i = 0; i < _names.Length; i++)
        {
            yield return new Variable(_names[i], _values[i]);
        }
    }
}

/// <summary>Collects scalars and table cells, then sorts them once into an <see cref="ObjectStore"/>.</summary>
public sealed class ObjectStoreBuilder
{
    private readonly List<Variable> _variables = [];
    private readonly List<ObjectIdentifier> _objects = [];

    /// <summary>A scalar object: its instance is the object's OID with .0 appended.</summary>
    public ObjectStoreBuilder AddScalar(ObjectIdentifier objectId, ISnmpData value)
    {
        ArgumentNullException.ThrowIfNull(objectId);
        _objects.Add(objectId);
        _variables.Add(new Variable(objectId.Append(0), value));
        return this;
    }

    /// <summary>Declares a table column, so a Get of a missing row answers noSuchInstance rather than noSuchObject.</summary>
    public ObjectStoreBuilder DeclareColumn(ObjectIdentifier columnId)
    {
        _objects.Add(columnId);
        return this;
    }

    /// <summary>One table cell: the column's OID followed by the row's index.</summary>
    public ObjectStoreBuilder AddCell(ObjectIdentifier columnId, uint rowIndex, ISnmpData value)
    {
        ArgumentNullException.ThrowIfNull(columnId);
        _variables.Add(new Variable(columnId.Append(rowIndex), value));
        return this;
    }

    public ObjectStore Build()
    {
        var variables = _variables.ToArray();
        Array.Sort(variables, static (a, b) => a.Id.CompareTo(b.Id));
        for (var i = 1; i < variables.Length; i++)
        {
            if (variables[i].Id == variables[i - 1].Id)
            {
                throw new InvalidOperationException($"the object store holds {variables[i].Id} twice");
            }
        }

        return new ObjectStore(
            Array.ConvertAll(variables, v => v.Id),
            Array.ConvertAll(variables, v => v.Data),
            _objects.ToArray());
    }
}
