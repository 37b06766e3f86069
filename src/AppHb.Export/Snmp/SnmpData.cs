using System.Text;

namespace AppHb.Export.Snmp;

/// <summary>The SMIv2 base types and the three exceptions a varbind may carry, with their AgentX type numbers
/// (RFC 2741 section 5.4).</summary>
public enum SnmpType : ushort
{
    Integer32 = 2,
    OctetString = 4,
    Null = 5,
    ObjectIdentifier = 6,
    IPAddress = 64,
    Counter32 = 65,
    Gauge32 = 66,
    TimeTicks = 67,
    Opaque = 68,
    Counter64 = 70,
    NoSuchObject = 128,
    NoSuchInstance = 129,
    EndOfMibView = 130,
}

/// <summary>A value in a varbind (shaped like SharpSnmpLib's <c>ISnmpData</c>).</summary>
public interface ISnmpData
{
    SnmpType TypeCode { get; }
}

/// <summary>INTEGER / Integer32, and enumerations.</summary>
public sealed record Integer32(int Value) : ISnmpData
{
    public SnmpType TypeCode => SnmpType.Integer32;

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>OCTET STRING; DisplayString is UTF-8 text here.</summary>
public sealed class OctetString : ISnmpData
{
    private readonly byte[] _octets;

    public OctetString(ReadOnlySpan<byte> octets) => _octets = octets.ToArray();

    public OctetString(string text) => _octets = Encoding.UTF8.GetBytes(text ?? throw new ArgumentNullException(nameof(text)));

    private OctetString(byte[] octets) => _octets = octets;

    /// <summary>Takes the array as it is, without a copy: it must not change afterwards.</summary>
    internal static OctetString Own(byte[] octets) => new(octets);

    public static OctetString Empty { get; } = new(ReadOnlySpan<byte>.Empty);

    public SnmpType TypeCode => SnmpType.OctetString;

    public ReadOnlySpan<byte> Octets => _octets;

    public override string ToString() => Encoding.UTF8.GetString(_octets);

    public override bool Equals(object? obj) => obj is OctetString other && Octets.SequenceEqual(other.Octets);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.AddBytes(_octets);
        return hash.ToHashCode();
    }
}

/// <summary>Counter32: wraps at 2^32 (managers compute rates across the wrap).</summary>
public sealed record Counter32(uint Value) : ISnmpData
{
    public SnmpType TypeCode => SnmpType.Counter32;
}

/// <summary>Gauge32 / Unsigned32 (same encoding, RFC 2578 section 7.1.7).</summary>
public sealed record Gauge32(uint Value) : ISnmpData
{
    public SnmpType TypeCode => SnmpType.Gauge32;
}

/// <summary>TimeTicks: hundredths of a second.</summary>
public sealed record TimeTicks(uint Value) : ISnmpData
{
    public SnmpType TypeCode => SnmpType.TimeTicks;

    public static TimeTicks From(TimeSpan span) => new((uint)Math.Clamp(span.Ticks / (TimeSpan.TicksPerMillisecond * 10), 0, uint.MaxValue));
}

/// <summary>Counter64.</summary>
public sealed record Counter64(ulong Value) : ISnmpData
{
    public SnmpType TypeCode => SnmpType.Counter64;
}

/// <summary>A value-less exception or NULL: noSuchObject, noSuchInstance, endOfMibView, or NULL itself.</summary>
public sealed class SnmpException : ISnmpData
{
    private SnmpException(SnmpType type) => TypeCode = type;

    public static SnmpException Null { get; } = new(SnmpType.Null);

    public static SnmpException NoSuchObject { get; } = new(SnmpType.NoSuchObject);

    public static SnmpException NoSuchInstance { get; } = new(SnmpType.NoSuchInstance);

    public static SnmpException EndOfMibView { get; } = new(SnmpType.EndOfMibView);

    public SnmpType TypeCode { get; }

    public override string ToString() => TypeCode.ToString();
}

/// <summary>One name and value.</summary>
public readonly record struct Variable(ObjectIdentifier Id, ISnmpData Data);
