namespace AppHb.Export.Snmp;

/// <summary>An immutable snapshot of a MIB subtree kept sorted by OID (the shape of SharpSnmpLib's ObjectStore): scalars
/// and cells in one sorted array (Get is one binary search, GetNext another), and <see cref="TableObject"/>s that
/// produce their cells on demand. Built per refresh by <see cref="ObjectStoreBuilder"/>, then read by any number of
/// requests without locks.</summary>
public sealed class ObjectStore
{
    private readonly ObjectIdentifier[] _names;
    private readonly ISnmpData[] _values;
    private readonly ObjectIdentifier[] _objects;
    private readonly TableObject[] _tables;

    internal ObjectStore(ObjectIdentifier[] names, ISnmpData[] values, ObjectIdentifier[] objects, TableObject[] tables)
    {
        _names = names;
        _values = values;
        _objects = objects;
        _tables = tables;
    }

    public static ObjectStore Empty { get; } = new([], [], [], []);

    public int Count => _names.Length + _tables.Sum(t => t.CellCount);

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

        foreach (var table in _tables)
        {
            if (table.Covers(name))
            {
                return table.Get(name);
            }
        }

        // RFC 3416 4.2.1: a name under (or equal to) an object's OID names that object; only the instance is missing.
        foreach (var candidate in _objects)
        {
            if (name.StartsWith(candidate))
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
        Variable? next = index < _names.Length ? new Variable(_names[index], _values[index]) : null;
        // Tables hold disjoint subtrees in OID order: the first with a candidate has the smallest one. Only the winner
        // is built (a GetNext per varbind is the whole of a walk through snmpd).
        foreach (var table in _tables)
        {
            if (table.TryNext(start, include, out var column, out var row))
            {
                if (next is null || table.CompareName(column, row, next.Value.Id) < 0)
                {
                    next = table.At(column, row);
                }

                break;
            }
        }

        return next is { } found && (end.IsNull || found.Id.CompareTo(end) < 0) ? found : null;
    }

    /// <summary>Every variable in order (a walk).</summary>
    public IEnumerable<Variable> Variables()
    {
        for (var next = GetNext(ObjectIdentifier.Null, false, ObjectIdentifier.Null); next is { } v; next = GetNext(v.Id, false, ObjectIdentifier.Null))
        {
            yield return v;
        }
    }
}

/// <summary>Collects scalars and table cells, then sorts them once into an <see cref="ObjectStore"/>.</summary>
public sealed class ObjectStoreBuilder
{
    private readonly List<Variable> _variables = [];
    private readonly List<ObjectIdentifier> _objects = [];
    private readonly List<TableObject> _tables = [];

    /// <summary>A table whose cells are produced on demand.</summary>
    public ObjectStoreBuilder AddTable(TableObject table)
    {
        ArgumentNullException.ThrowIfNull(table);
        _tables.Add(table);
        return this;
    }

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

        var tables = _tables.OrderBy(t => t.Entry).ToArray();
        foreach (var table in tables)
        {
            if (variables.Any(v => table.Covers(v.Id)))
            {
                throw new InvalidOperationException($"the object store holds cells of the table {table.Entry} twice");
            }
        }

        return new ObjectStore(
            Array.ConvertAll(variables, v => v.Id),
            Array.ConvertAll(variables, v => v.Data),
            _objects.ToArray(),
            tables);
    }
}
