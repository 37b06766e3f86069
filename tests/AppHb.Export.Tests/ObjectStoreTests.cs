using AppHb.Export.Snmp;
using AppHb.Export.Snmp.AgentX;
using FsCheck;
using FsCheck.Fluent;

namespace AppHb.Export.Tests;

/// <summary>Get, GetNext and GetBulk answered from an object store as RFC 2741 section 7.2 and RFC 3416 describe.</summary>
public sealed class ObjectStoreTests
{
    private static readonly ObjectIdentifier Root = ObjectIdentifier.Parse("1.3.6.1.4.1.32473.1");
    private static readonly ObjectIdentifier Scalar = Root.Append(1, 1);
    private static readonly ObjectIdentifier ColumnA = Root.Append(3, 1, 2);
    private static readonly ObjectIdentifier ColumnB = Root.Append(3, 1, 3);
    private static readonly ObjectIdentifier Empty = Root.Append(4, 1, 2);

    private static ObjectStore Store() => new ObjectStoreBuilder()
        .AddScalar(Scalar, new OctetString("v"))
        .DeclareColumn(ColumnA).DeclareColumn(ColumnB).DeclareColumn(Empty)
        .AddCell(ColumnB, 1, new Integer32(10)).AddCell(ColumnB, 2, new Integer32(20))
        .AddCell(ColumnA, 2, new OctetString("two")).AddCell(ColumnA, 10, new OctetString("ten")).AddCell(ColumnA, 1, new OctetString("one"))
        .Build();

    [Fact]
    public void Get_answers_the_value_or_which_exception_applies()
    {
        var store = Store();
        Assert.Equal("v", store.Get(Scalar.Append(0)).ToString());
        Assert.Same(SnmpException.NoSuchInstance, store.Get(Scalar.Append(1)));
        Assert.Same(SnmpException.NoSuchInstance, store.Get(Empty.Append(1)));
        Assert.Same(SnmpException.NoSuchInstance, store.Get(Scalar));
        Assert.Same(SnmpException.NoSuchObject, store.Get(Root.Append(9)));
    }

    [Fact]
    public void GetNext_walks_columns_in_OID_order_row_10_after_row_2()
    {
        var store = Store();
        var names = new List<string>();
        for (var next = store.GetNext(Root, false, ObjectIdentifier.Null); next is { } v; next = store.GetNext(v.Id, false, ObjectIdentifier.Null))
        {
            names.Add(v.Data.ToString()!);
        }

        Assert.Equal(["v", "one", "two", "ten", "10", "20"], names);
    }

    [Fact]
    public void A_search_range_includes_its_start_when_asked_and_stops_before_its_end()
    {
        var store = Store();
        Assert.Equal("one", store.GetNext(ColumnA.Append(1), true, ObjectIdentifier.Null)!.Value.Data.ToString());
        Assert.Equal("two", store.GetNext(ColumnA.Append(1), false, ObjectIdentifier.Null)!.Value.Data.ToString());
        Assert.Null(store.GetNext(ColumnA.Append(10), false, ColumnB));
        Assert.Null(store.GetNext(ColumnB.Append(2), false, ObjectIdentifier.Null));
    }

    [Fact]
    public void A_walk_by_GetNext_from_anywhere_is_strictly_increasing_and_ends() => Prop.ForAll(
        Arb.From(Gen.ListOf(from row in Gen.Choose(1, 50) from column in Gen.Choose(1, 5) select (row, column))),
        cells =>
        {
            var builder = new ObjectStoreBuilder();
            foreach (var (row, column) in cells.Distinct())
            {
                builder.AddCell(Root.Append(3, 1, (uint)column), (uint)row, new Integer32(row));
            }

            var store = builder.Build();
            var previous = ObjectIdentifier.Null;
            var count = 0;
            for (var next = store.GetNext(previous, false, ObjectIdentifier.Null); next is { } v; next = store.GetNext(v.Id, false, ObjectIdentifier.Null))
            {
                if (v.Id.CompareTo(previous) <= 0)
                {
                    return false;
                }

                previous = v.Id;
                count++;
            }

            return count == cells.Distinct().Count();
        }).QuickCheckThrowOnFailure();

    /// <summary>The same table twice: once as cells in the sorted array, once as a TableObject producing them.</summary>
    private static (ObjectStore Cells, ObjectStore Table) Twins(IReadOnlyList<uint> columns, IReadOnlyList<uint> rows)
    {
        var entry = Root.Append(3, 1);
        var cells = new ObjectStoreBuilder().AddScalar(Scalar, new Integer32(1)).AddScalar(Root.Append(5, 1), new Integer32(2));
        foreach (var column in columns)
        {
            cells.DeclareColumn(entry.Append(column));
            foreach (var row in rows)
            {
                cells.AddCell(entry.Append(column), row, new Gauge32(column * 1000 + row));
            }
        }

        var table = TableObject.Create(entry, columns.Select(c => (c, (Func<uint, ISnmpData>)(row => new Gauge32(c * 1000 + row)))).ToList(),
            rows.Select(r => (r, r)));
        var tabled = new ObjectStoreBuilder().AddScalar(Scalar, new Integer32(1)).AddScalar(Root.Append(5, 1), new Integer32(2)).AddTable(table);
        return (cells.Build(), tabled.Build());
    }

    [Fact]
    public void A_table_object_answers_exactly_as_the_same_cells_stored_one_by_one() => Prop.ForAll(
        Arb.From(from columns in Gen.SubListOf([2u, 3u, 5u, 9u])
                 from rows in Gen.SubListOf([1u, 2u, 7u, 10u, 4000000000u])
                 from probes in Gen.ListOf(
                     from length in Gen.Choose(0, 4)
                     from tail in Gen.ArrayOf(Gen.Elements(0u, 1u, 2u, 3u, 4u, 5u, 7u, 9u, 10u, 11u, 4000000000u), length)
                     from prefix in Gen.Elements(Root, Root.Append(3), Root.Append(3, 1), Root.Append(3, 1, 3), Root.Append(1), ObjectIdentifier.Null)
                     from include in ArbMap.Default.GeneratorFor<bool>()
                     select (Oid: prefix.Append(tail), Include: include))
                 select (columns, rows, probes)),
        t =>
        {
            var (cells, table) = Twins(t.columns.ToList(), t.rows.ToList());
            if (!cells.Variables().SequenceEqual(table.Variables()) || cells.Count != table.Count)
            {
                return false;
            }

            foreach (var (oid, include) in t.probes)
            {
                if (!Equals(cells.GetNext(oid, include, ObjectIdentifier.Null), table.GetNext(oid, include, ObjectIdentifier.Null))
                    || !Equals(cells.Get(oid), table.Get(oid)))
                {
                    return false;
                }
            }

            return true;
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void A_table_object_walks_column_by_column_and_names_its_exceptions()
    {
        var (_, store) = Twins([2, 3], [1, 2, 10]);
        var entry = Root.Append(3, 1);
        Assert.Equal([2001u, 2002, 2010, 3001, 3002, 3010], store.Variables().Select(v => v.Data).OfType<Gauge32>().Select(g => g.Value));
        Assert.Equal(entry.Append(3, 1), store.GetNext(entry.Append(2, 10), false, ObjectIdentifier.Null)!.Value.Id);
        Assert.Equal(entry.Append(2, 10), store.GetNext(entry.Append(2, 10), true, ObjectIdentifier.Null)!.Value.Id);
        Assert.Equal(entry.Append(2, 10), store.GetNext(entry.Append(2, 2, 0), true, ObjectIdentifier.Null)!.Value.Id);
        Assert.Equal(Root.Append(5, 1, 0), store.GetNext(entry.Append(3, 10), false, ObjectIdentifier.Null)!.Value.Id);
        Assert.Null(store.GetNext(entry.Append(2, 10), false, entry.Append(3)));
        Assert.Same(SnmpException.NoSuchInstance, store.Get(entry.Append(2, 3)));
        Assert.Same(SnmpException.NoSuchInstance, store.Get(entry.Append(2, 1, 0)));
        Assert.Same(SnmpException.NoSuchObject, store.Get(entry.Append(4, 1)));
        Assert.Contains("row 7 twice", Assert.Throws<InvalidOperationException>(() =>
            TableObject.Create(entry, [(2u, (Func<int, ISnmpData>)(r => new Integer32(r)))], [(7u, 1), (7u, 2)])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_same_cell_twice_is_a_bug_caught_when_the_store_is_built()
    {
        var builder = new ObjectStoreBuilder().AddCell(ColumnA, 1, new Integer32(1)).AddCell(ColumnA, 1, new Integer32(2));
        Assert.Contains("twice", Assert.Throws<InvalidOperationException>(builder.Build).Message, StringComparison.Ordinal);
    }

    private static IReadOnlyList<Variable> Answer(AgentXPdu request) => AgentXResponder.Answer(request with { PacketId = 9 }, Store())!.Variables;

    [Fact]
    public void GetBulk_answers_non_repeaters_once_then_rows_of_repeaters_and_stops_after_the_end()
    {
        var answer = Answer(new GetBulkPdu(1, 10,
        [
            new(Root, false, ObjectIdentifier.Null),
            new(ColumnA, false, ObjectIdentifier.Null),
            new(ColumnB, false, ObjectIdentifier.Null),
        ]));
        // The non-repeater, then rows (A, B) until a row where both are at the end of the view; A walks on into
        // column B as GetNext does (a manager stops at the column's end itself).
        Assert.Equal(["v", "one", "10", "two", "20", "ten", "EndOfMibView", "10", "EndOfMibView", "20", "EndOfMibView", "EndOfMibView", "EndOfMibView"],
            answer.Select(v => v.Data.ToString()));
        Assert.Equal(ColumnB.Append(2), answer[^1].Id);
    }

    [Fact]
    public void GetBulk_with_max_repetitions_zero_answers_the_non_repeaters_only()
    {
        var answer = Answer(new GetBulkPdu(1, 0, [new(Root, false, ObjectIdentifier.Null), new(ColumnA, false, ObjectIdentifier.Null)]));
        Assert.Equal(["v"], answer.Select(v => v.Data.ToString()));
    }

    [Fact]
    public void GetNext_past_the_end_answers_endOfMibView_named_by_the_request()
    {
        var start = Root.Append(9);
        var answer = Answer(new GetPdu(true, [new(start, false, ObjectIdentifier.Null)]));
        Assert.Equal(new Variable(start, SnmpException.EndOfMibView), answer.Single());
    }

    [Fact]
    public void A_set_is_refused_at_its_test_phase_and_cleanup_gets_no_answer()
    {
        var refused = AgentXResponder.Answer(new VariablesPdu(AgentXPduType.TestSet, [new(ColumnA.Append(1), new OctetString("x"))]) { PacketId = 3, SessionId = 4 }, Store())!;
        Assert.Equal((AgentXError.NotWritable, (ushort)1, 3u, 4u), (refused.Error, refused.Index, refused.PacketId, refused.SessionId));
        Assert.Null(AgentXResponder.Answer(new VariablesPdu(AgentXPduType.CleanupSet, []), Store()));
        Assert.Equal("one", Store().Get(ColumnA.Append(1)).ToString());
    }

    [Fact]
    public void OIDs_parse_print_and_compare_as_SNMP_orders_them()
    {
        Assert.Equal("1.3.6.1.4.1.32473", ObjectIdentifier.Parse(".1.3.6.1.4.1.32473").ToString());
        Assert.True(ObjectIdentifier.Parse("1.3.6.1.2") < ObjectIdentifier.Parse("1.3.6.1.10"));
        Assert.True(ObjectIdentifier.Parse("1.3.6.1") < ObjectIdentifier.Parse("1.3.6.1.0"));
        Assert.Contains("sub-identifier 3 (\"x\")", Assert.Throws<FormatException>(() => ObjectIdentifier.Parse("1.3.x")).Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => ObjectIdentifier.Parse("1.3.4294967296"));
    }
}
