namespace AppHb.Export.Snmp;

/// <summary>A conceptual table (SharpSnmpLib's TableObject): the columns of one entry and rows indexed by a single
/// Unsigned32, whose cells are produced when a request reaches them. A walk of a thousand rows then reads the rows the
/// table was built over, instead of a store of eight thousand OIDs and values built, and collected, every second.</summary>
public sealed class TableObject
{
    private readonly uint[] _columns;
    private readonly uint[] _rows;
    private readonly Func<int, int, ISnmpData> _cell;

    private TableObject(ObjectIdentifier entry, uint[] columns, uint[] rows, Func<int, int, ISnmpData> cell)
    {
        Entry = entry;
        _columns = columns;
        _rows = rows;
        _cell = cell;
    }

    /// <summary>The entry's OID (…Table.1); a cell is Entry.column.row.</summary>
    public ObjectIdentifier Entry { get; }

    public int CellCount => _columns.Length * _rows.Length;

    /// <param name="columns">The accessible columns, by column number, with how each reads a row.</param>
    /// <param name="rows">The rows with their index; any order, indexes distinct.</param>
    public static TableObject Create<TRow>(ObjectIdentifier entry, IReadOnlyList<(uint Column, Func<TRow, ISnmpData> Value)> columns,
        IEnumerable<(uint Index, TRow Row)> rows)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(rows);
        var byColumn = columns.OrderBy(c => c.Column).ToArray();
        var byIndex = rows.OrderBy(r => r.Index).ToArray();
        for (var i = 1; i < byIndex.Length; i++)
        {
            if (byIndex[i].Index == byIndex[i - 1].Index)
            {
                throw new InvalidOperationException($"{entry}: row {byIndex[i].Index} twice");
            }
        }

        return new TableObject(entry, Array.ConvertAll(byColumn, c => c.Column), Array.ConvertAll(byIndex, r => r.Index),
            (column, row) => byColumn[column].Value(byIndex[row].Row));
    }

    /// <summary>True for any OID under the entry (a cell, a column, or a name in a column that is not a cell).</summary>
    internal bool Covers(ObjectIdentifier name) => name.Length > Entry.Length && name.StartsWith(Entry);

    /// <summary>The cell at exactly this name; noSuchObject outside the columns, noSuchInstance for a missing row.</summary>
    internal ISnmpData Get(ObjectIdentifier name)
    {
        var relative = name.SubIdentifiers[Entry.Length..];
        var column = Array.BinarySearch(_columns, relative[0]);
        if (column < 0)
        {
            return SnmpException.NoSuchObject;
        }

        var row = relative.Length == 2 ? Array.BinarySearch(_rows, relative[1]) : -1;
        return row < 0 ? SnmpException.NoSuchInstance : _cell(column, row);
    }

    /// <summary>The first cell after <paramref name="start"/> (or at it, when <paramref name="include"/>) in OID order
    /// (column by column, each row in index order), as column and row positions: found without building the cell, so
    /// an object store can weigh this table's candidate against its scalars' for free.</summary>
    internal bool TryNext(ObjectIdentifier start, bool include, out int column, out int row)
    {
        column = 0;
        row = 0;
        if (_rows.Length == 0 || _columns.Length == 0)
        {
            return false;
        }

        if (start.CompareTo(Entry) <= 0)
        {
            return true;
        }

        if (!start.StartsWith(Entry))
        {
            return false;
        }

        var relative = start.SubIdentifiers[Entry.Length..];
        column = Array.BinarySearch(_columns, relative[0]);
        if (column < 0)
        {
            // Between two columns (or past the last): the next column's first row.
            column = ~column;
            return column < _columns.Length;
        }

        if (relative.Length > 1)
        {
            // Entry.column.r itself qualifies only when included; anything longer (r.x) sorts after it.
            var exact = include && relative.Length == 2;
            var at = Array.BinarySearch(_rows, relative[1]);
            row = at >= 0 ? (exact ? at : at + 1) : ~at;
        }

        if (row < _rows.Length)
        {
            return true;
        }

        column++;
        row = 0;
        return column < _columns.Length;
    }

    /// <summary>Compares the cell's name with <paramref name="other"/>, without building the name.</summary>
    internal int CompareName(int column, int row, ObjectIdentifier other)
    {
        Span<uint> name = stackalloc uint[Entry.Length + 2];
        Entry.SubIdentifiers.CopyTo(name);
        name[^2] = _columns[column];
        name[^1] = _rows[row];
        return ((ReadOnlySpan<uint>)name).SequenceCompareTo(other.SubIdentifiers);
    }

    internal Variable At(int column, int row) => new(Entry.Append(_columns[column], _rows[row]), _cell(column, row));
}
