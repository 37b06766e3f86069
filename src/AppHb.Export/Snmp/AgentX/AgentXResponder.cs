namespace AppHb.Export.Snmp.AgentX;

/// <summary>Answers the master's requests from an <see cref="ObjectStore"/>: pure, so every rule of RFC 2741 section 7.2
/// is tested without a socket. The subtree is read-only: a set is refused at its test phase.</summary>
public static class AgentXResponder
{
    /// <summary>More varbinds than this in one answer are not sent: snmpd would not fit them in one SNMP message.</summary>
    public const int MaxVariables = 2048;

    /// <summary>The Response-PDU for a request, or null when the PDU wants none (CleanupSet, a Response).</summary>
    public static ResponsePdu? Answer(AgentXPdu request, ObjectStore store)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(store);
        var (error, index, variables) = request switch
        {
            GetPdu get => (AgentXError.NoError, (ushort)0, Get(store, get)),
            GetBulkPdu bulk => (AgentXError.NoError, (ushort)0, Bulk(store, bulk)),
            // RFC 2741 section 7.2.4.1: refuse at the test phase; the master then sends CleanupSet.
            VariablesPdu { Kind: AgentXPduType.TestSet } => (AgentXError.NotWritable, (ushort)1, []),
            VariablesPdu { Kind: AgentXPduType.CommitSet or AgentXPduType.UndoSet } => (AgentXError.GenErr, (ushort)0, []),
            VariablesPdu { Kind: AgentXPduType.CleanupSet } or ResponsePdu => (AgentXError.NoError, ushort.MaxValue, null),
            VariablesPdu { Kind: AgentXPduType.Ping } => (AgentXError.NoError, (ushort)0, []),
            _ => (AgentXError.ProcessingError, (ushort)0, new List<Variable>()),
        };

        return variables is null
            ? null
            : new ResponsePdu(0, error, index, variables) { SessionId = request.SessionId, TransactionId = request.TransactionId, PacketId = request.PacketId };
    }

    /// <summary>Get and GetNext. Loops, not LINQ: this runs once per varbind of every walk (snmpd sends one GetNext per
    /// varbind).</summary>
    private static List<Variable> Get(ObjectStore store, GetPdu get)
    {
        var variables = new List<Variable>(get.Ranges.Count);
        for (var i = 0; i < get.Ranges.Count; i++)
        {
            var range = get.Ranges[i];
            variables.Add(get.Next ? Next(store, range) : new Variable(range.Start, store.Get(range.Start)));
        }

        return variables;
    }

    private static Variable Next(ObjectStore store, SearchRange range) =>
        store.GetNext(range.Start, range.Include, range.End) ?? new Variable(range.Start, SnmpException.EndOfMibView);

    /// <summary>RFC 2741 section 7.2.3.3: the non-repeaters once, then up to max-repetitions rows of the repeaters, each
    /// continuing from the row before; it stops after a row where every repeater reached the end of its range.</summary>
    private static List<Variable> Bulk(ObjectStore store, GetBulkPdu bulk)
    {
        var ranges = bulk.Ranges;
        var nonRepeaters = Math.Min(bulk.NonRepeaters, ranges.Count);
        var variables = new List<Variable>();
        for (var i = 0; i < nonRepeaters; i++)
        {
            variables.Add(Next(store, ranges[i]));
        }

        var repeaters = ranges.Count - nonRepeaters;
        if (repeaters == 0)
        {
            return variables;
        }

        var cursors = new SearchRange[repeaters];
        for (var j = 0; j < repeaters; j++)
        {
            cursors[j] = ranges[nonRepeaters + j];
        }

        var done = new bool[repeaters];
        var rows = Math.Min(bulk.MaxRepetitions, Math.Max(1, (MaxVariables - nonRepeaters) / repeaters));
        for (var row = 0; row < rows; row++)
        {
            var allDone = true;
            for (var j = 0; j < repeaters; j++)
            {
                if (done[j])
                {
                    variables.Add(new Variable(cursors[j].Start, SnmpException.EndOfMibView));
                    continue;
                }

                var found = store.GetNext(cursors[j].Start, cursors[j].Include, cursors[j].End);
                if (found is { } variable)
                {
                    variables.Add(variable);
                    cursors[j] = new SearchRange(variable.Id, false, cursors[j].End);
                    allDone = false;
                }
                else
                {
                    done[j] = true;
                    variables.Add(new Variable(cursors[j].Start, SnmpException.EndOfMibView));
                }
            }

            if (allDone)
            {
                break;
            }
        }

        return variables;
    }
}
