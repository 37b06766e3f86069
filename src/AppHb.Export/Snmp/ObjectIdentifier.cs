using System.Globalization;
using System.Text;

namespace AppHb.Export.Snmp;

/// <summary>An SNMP object identifier: an immutable sequence of sub-identifiers, ordered lexicographically the way
/// GetNext walks a MIB (RFC 3416 section 4.2.2).</summary>
public sealed class ObjectIdentifier : ISnmpData, IComparable<ObjectIdentifier>, IEquatable<ObjectIdentifier>
{
    private readonly uint[] _subIdentifiers;

    public ObjectIdentifier(params uint[] subIdentifiers)
    {
        ArgumentNullException.ThrowIfNull(subIdentifiers);
        if (subIdentifiers.Length > MaxLength)
        {
            throw new ArgumentException($"an OID has at most {MaxLength} sub-identifiers, this one {subIdentifiers.Length}", nameof(subIdentifiers));
        }

        _subIdentifiers = subIdentifiers;
    }

    /// <summary>RFC 2578 section 3.5: at most 128 sub-identifiers.</summary>
    public const int MaxLength = 128;

    /// <summary>The empty (null) OID, which AgentX uses for "no upper bound".</summary>
    public static ObjectIdentifier Null { get; } = new();

    public SnmpType TypeCode => SnmpType.ObjectIdentifier;

    public ReadOnlySpan<uint> SubIdentifiers => _subIdentifiers;

    public int Length => _subIdentifiers.Length;

    public bool IsNull => _subIdentifiers.Length == 0;

    /// <summary>Parses dotted decimal, with or without a leading dot: "1.3.6.1.4.1".</summary>
    public static ObjectIdentifier Parse(string dotted)
    {
        ArgumentNullException.ThrowIfNull(dotted);
        var text = dotted.StartsWith('.') ? dotted[1..] : dotted;
        if (text.Length == 0)
        {
            return Null;
        }

        var parts = text.Split('.');
        var subIdentifiers = new uint[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!uint.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out subIdentifiers[i]))
            {
                throw new FormatException($"\"{dotted}\" is not an OID: sub-identifier {i + 1} (\"{parts[i]}\") is not a number from 0 to 4294967295");
            }
        }

        return new ObjectIdentifier(subIdentifiers);
    }

    /// <summary>This OID with more sub-identifiers after it (a column and a row index, a scalar's .0).</summary>
    public ObjectIdentifier Append(params ReadOnlySpan<uint> more)
    {
        var result = new uint[_subIdentifiers.Length + more.Length];
        _subIdentifiers.CopyTo(result, 0);
        more.CopyTo(result.AsSpan(_subIdentifiers.Length));
        return new ObjectIdentifier(result);
    }

    /// <summary>True when <paramref name="prefix"/> is this OID or an ancestor of it.</summary>
    public bool StartsWith(ObjectIdentifier prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return SubIdentifiers.StartsWith(prefix.SubIdentifiers);
    }

    public int CompareTo(ObjectIdentifier? other) => other is null ? 1 : SubIdentifiers.SequenceCompareTo(other.SubIdentifiers);

    public bool Equals(ObjectIdentifier? other) => other is not null && SubIdentifiers.SequenceEqual(other.SubIdentifiers);

    public override bool Equals(object? obj) => obj is ObjectIdentifier other && Equals(other);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(SubIdentifiers));
        return hash.ToHashCode();
    }

    public override string ToString()
    {
        var text = new StringBuilder(_subIdentifiers.Length * 4);
        foreach (var sub in _subIdentifiers)
        {
            if (text.Length > 0)
            {
                text.Append('.');
            }

            text.Append(sub.ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    public static bool operator ==(ObjectIdentifier? left, ObjectIdentifier? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(ObjectIdentifier? left, ObjectIdentifier? right) => !(left == right);

    public static bool operator <(ObjectIdentifier left, ObjectIdentifier right) => Compare(left, right) < 0;

    public static bool operator >(ObjectIdentifier left, ObjectIdentifier right) => Compare(left, right) > 0;

    public static bool operator <=(ObjectIdentifier left, ObjectIdentifier right) => Compare(left, right) <= 0;

    public static bool operator >=(ObjectIdentifier left, ObjectIdentifier right) => Compare(left, right) >= 0;

    private static int Compare(ObjectIdentifier left, ObjectIdentifier right)
    {
        ArgumentNullException.ThrowIfNull(left);
        return left.CompareTo(right);
    }
}
