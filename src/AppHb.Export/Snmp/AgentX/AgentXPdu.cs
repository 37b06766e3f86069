namespace AppHb.Export.Snmp.AgentX;

/// <summary>AgentX PDU types (RFC 2741 section 6.1; net-snmp <c>agent/mibgroup/agentx/protocol.h</c>).</summary>
public enum AgentXPduType : byte
{
    Open = 1,
    Close = 2,
    Register = 3,
    Unregister = 4,
    Get = 5,
    GetNext = 6,
    GetBulk = 7,
    TestSet = 8,
    CommitSet = 9,
    UndoSet = 10,
    CleanupSet = 11,
    Notify = 12,
    Ping = 13,
    IndexAllocate = 14,
    IndexDeallocate = 15,
    AddAgentCaps = 16,
    RemoveAgentCaps = 17,
    Response = 18,
}

/// <summary>h.flags (RFC 2741 section 6.1).</summary>
[Flags]
public enum AgentXFlags : byte
{
    None = 0,
    InstanceRegistration = 0x01,
    NewIndex = 0x02,
    AnyIndex = 0x04,
    NonDefaultContext = 0x08,
    NetworkByteOrder = 0x10,
}

/// <summary>res.error: the SNMP error-status values and AgentX's own (RFC 2741 section 6.2.16).</summary>
public enum AgentXError : ushort
{
    NoError = 0,
    GenErr = 5,
    NoAccess = 6,
    NotWritable = 17,
    OpenFailed = 256,
    NotOpen = 257,
    IndexWrongType = 258,
    IndexAlreadyAllocated = 259,
    IndexNoneAvailable = 260,
    IndexNotAllocated = 261,
    UnsupportedContext = 262,
    DuplicateRegistration = 263,
    UnknownRegistration = 264,
    UnknownAgentCaps = 265,
    ParseError = 266,
    RequestDenied = 267,
    ProcessingError = 268,
}

/// <summary>c.reason of a Close-PDU (RFC 2741 section 6.2.2).</summary>
public enum AgentXCloseReason : byte
{
    Other = 1,
    ParseError = 2,
    ProtocolError = 3,
    Timeouts = 4,
    Shutdown = 5,
    ByManager = 6,
}

/// <summary>The 20-byte header every PDU starts with (RFC 2741 section 6.1).</summary>
public readonly record struct AgentXHeader(AgentXPduType Type, AgentXFlags Flags, uint SessionId, uint TransactionId, uint PacketId, uint PayloadLength)
{
    public const int Size = 20;

    public const byte Version = 1;

    public bool NetworkByteOrder => (Flags & AgentXFlags.NetworkByteOrder) != 0;
}

/// <summary>A SearchRange: from <paramref name="Start"/> (itself included when <paramref name="Include"/>) up to, not
/// including, <paramref name="End"/> (a null OID: no bound). RFC 2741 section 5.2.</summary>
public readonly record struct SearchRange(ObjectIdentifier Start, bool Include, ObjectIdentifier End);

/// <summary>A decoded PDU: the header's identifiers, the context when one was sent, and the type's own fields.</summary>
public abstract record AgentXPdu
{
    public abstract AgentXPduType Type { get; }

    public uint SessionId { get; init; }

    public uint TransactionId { get; init; }

    public uint PacketId { get; init; }

    /// <summary>The non-default context (an SNMPv3 context name), or null for the default one.</summary>
    public byte[]? Context { get; init; }

    /// <summary>Header flags beyond byte order and context (instance registration, index allocation).</summary>
    public AgentXFlags ExtraFlags { get; init; }
}

/// <param name="Timeout">Seconds the master waits for this subagent's answers (0: the master's default).</param>
/// <param name="Id">The subagent's identity (an OID, often null).</param>
public sealed record OpenPdu(byte Timeout, ObjectIdentifier Id, string Description) : AgentXPdu
{
    public override AgentXPduType Type => AgentXPduType.Open;
}

public sealed record ClosePdu(AgentXCloseReason Reason) : AgentXPdu
{
    public override AgentXPduType Type => AgentXPduType.Close;
}

/// <param name="RangeSubId">0, or which sub-identifier of the subtree the upper bound replaces.</param>
public sealed record RegisterPdu(byte Timeout, byte Priority, ObjectIdentifier Subtree, byte RangeSubId = 0, uint UpperBound = 0, bool Unregister = false) : AgentXPdu
{
    public override AgentXPduType Type => Unregister ? AgentXPduType.Unregister : AgentXPduType.Register;
}

/// <summary>Get-PDU or GetNext-PDU.</summary>
public sealed record GetPdu(bool Next, IReadOnlyList<SearchRange> Ranges) : AgentXPdu
{
    public override AgentXPduType Type => Next ? AgentXPduType.GetNext : AgentXPduType.Get;
}

public sealed record GetBulkPdu(ushort NonRepeaters, ushort MaxRepetitions, IReadOnlyList<SearchRange> Ranges) : AgentXPdu
{
    public override AgentXPduType Type => AgentXPduType.GetBulk;
}

/// <summary>Notify-PDU (sysUpTime.0 optional, then snmpTrapOID.0, then the objects), TestSet-PDU (a VarBindList),
/// and the value-less CommitSet, UndoSet, CleanupSet and Ping PDUs.</summary>
public sealed record VariablesPdu(AgentXPduType Kind, IReadOnlyList<Variable> Variables) : AgentXPdu
{
    public override AgentXPduType Type => Kind;

    internal static bool Carries(AgentXPduType type) => type is AgentXPduType.Notify or AgentXPduType.TestSet;

    internal static bool IsBare(AgentXPduType type) =>
        type is AgentXPduType.CommitSet or AgentXPduType.UndoSet or AgentXPduType.CleanupSet or AgentXPduType.Ping;
}

/// <param name="SysUpTime">The master's sysUpTime when it answers; subagents send 0.</param>
/// <param name="Index">1-based position of the varbind in error, or 0.</param>
public sealed record ResponsePdu(uint SysUpTime, AgentXError Error, ushort Index, IReadOnlyList<Variable> Variables) : AgentXPdu
{
    public override AgentXPduType Type => AgentXPduType.Response;
}

/// <summary>A PDU this subagent does not act on (index allocation, agent capabilities): kept as its header only.</summary>
public sealed record UnhandledPdu(AgentXPduType Kind) : AgentXPdu
{
    public override AgentXPduType Type => Kind;
}

/// <summary>A PDU that does not parse: which PDU and field, at which offset.</summary>
public sealed class AgentXParseException : Exception
{
    public AgentXParseException()
        : base("malformed AgentX PDU")
    {
    }

    public AgentXParseException(string message)
        : base(message)
    {
    }

    public AgentXParseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
