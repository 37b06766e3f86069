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
        ResponsePdu response;
        switch (request)
        {
            case GetPdu { Next: false } get:
                response = Reply(get.Ranges.Select(range => new Variable(range.Start, store.Get(range.Start))).ToList());
                break;
            case GetPdu get:
                response = Reply(get.Ranges.Select(range => Next(store, range)).ToList());
                break;
            case GetBulkPdu bulk:
                response = Reply(Bulk(store, bulk));
                break;
            case VariablesPdu { Kind: AgentXPduType.TestSet }:
                // RFC 2741 section 7.2.4.1: refuse at the test phase; the master then sends CleanupSet.
                response = new ResponsePdu(0, AgentXError.NotWritable, 1, []);
                break;
            case VariablesPdu { Kind: AgentXPduType.CommitSet or AgentXPduType.UndoSet }:
                response = new ResponsePdu(0, AgentXError.GenErr, 0, []);
                break;
            case VariablesPdu { Kind: AgentXPduType.CleanupSet }:
            case ResponsePdu:
                return null;
            case VariablesPdu { Kind: AgentXPduType.Ping }:
                response = Reply([]);
                break;
            default:
                response = new ResponsePdu(0, AgentXError.ProcessingError, 0, []);
                break;
        }

        return response with { SessionId = request.SessionId, TransactionId = request.TransactionId, PacketId = request.PacketId };
    }

    private static ResponsePdu Reply(List<Variable> variables) => new(0, AgentXError.NoError, 0, variables);

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
