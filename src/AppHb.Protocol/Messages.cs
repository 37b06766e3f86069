using System.Text;

namespace AppHb.Protocol;

/// <summary>A frame payload with a fixed type. Readers validate every field; writers assume valid values.</summary>
public interface IMessage<TSelf> where TSelf : IMessage<TSelf>
{
    static abstract FrameType Type { get; }

    int PayloadSize { get; }

    void WritePayload(ref PayloadWriter writer);

    static abstract TSelf Read(ReadOnlySpan<byte> payload);
}

/// <summary>Register this connection: one connection is one client. Intervals are milliseconds; warn 0 disables warn.</summary>
public sealed record RegisterRequest(string Name, string Instance, uint IntervalMs, uint WarnMs) : IMessage<RegisterRequest>
{
    public static FrameType Type => FrameType.Register;

    public int PayloadSize => PayloadWriter.SizeOf(Name) + PayloadWriter.SizeOf(Instance) + 8;

    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteString(Name);
        writer.WriteString(Instance);
        writer.WriteUInt32(IntervalMs);
        writer.WriteUInt32(WarnMs);
    }

    public static RegisterRequest Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var name = reader.ReadString("name", FrameFormat.MaxNameBytes);
        if (name.Length == 0)
        {
            throw new ProtocolException(ErrorCode.InvalidArgument, "Register frame: field 'name' must not be empty");
        }

        var instance = reader.ReadString("instance", FrameFormat.MaxNameBytes);
        var interval = reader.ReadUInt32("interval_ms");
        var warn = reader.ReadUInt32("warn_ms");
        reader.EnsureEnd();
        return new RegisterRequest(name, instance, interval, warn);
    }
}

/// <summary>Change the heartbeat interval (milliseconds).</summary>
public sealed record SetIntervalRequest(uint IntervalMs) : IMessage<SetIntervalRequest>
{
    public static FrameType Type => FrameType.SetInterval;

    public int PayloadSize => 4;

    public void WritePayload(ref PayloadWriter writer) => writer.WriteUInt32(IntervalMs);

    public static SetIntervalRequest Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var value = reader.ReadUInt32("interval_ms");
        reader.EnsureEnd();
        return new SetIntervalRequest(value);
    }
}

/// <summary>Change the warn time (milliseconds; 0 disables warn events).</summary>
public sealed record SetWarnRequest(uint WarnMs) : IMessage<SetWarnRequest>
{
    public static FrameType Type => FrameType.SetWarn;

    public int PayloadSize => 4;

    public void WritePayload(ref PayloadWriter writer) => writer.WriteUInt32(WarnMs);

    public static SetWarnRequest Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var value = reader.ReadUInt32("warn_ms");
        reader.EnsureEnd();
        return new SetWarnRequest(value);
    }
}

/// <summary>The daemon accepted a registration. Pid, uid and gid are what the kernel said of the socket's peer.</summary>
public sealed record RegisteredReply(ulong ClientId, int Pid, uint Uid, uint Gid) : IMessage<RegisteredReply>
{
    public static FrameType Type => FrameType.Registered;

    public int PayloadSize => 20;

    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteUInt64(ClientId);
        writer.WriteInt32(Pid);
        writer.WriteUInt32(Uid);
        writer.WriteUInt32(Gid);
    }

    public static RegisteredReply Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var reply = new RegisteredReply(reader.ReadUInt64("client_id"), reader.ReadInt32("pid"), reader.ReadUInt32("uid"), reader.ReadUInt32("gid"));
        reader.EnsureEnd();
        return reply;
    }
}

/// <summary>A request failed. The message is for humans and names what was wrong.</summary>
public sealed record ErrorReply(ErrorCode Code, string Message) : IMessage<ErrorReply>
{
    /// <summary>Longest message the daemon sends; longer ones are cut.</summary>
    public const int MaxMessageBytes = 1024;

    public static FrameType Type => FrameType.Error;

    public int PayloadSize => 2 + PayloadWriter.SizeOf(Message);

    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteUInt16((ushort)Code);
        writer.WriteString(Message);
    }

    public static ErrorReply Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var code = (ErrorCode)reader.ReadUInt16("code");
        var message = reader.ReadString("message", MaxMessageBytes);
        reader.EnsureEnd();
        return new ErrorReply(code, message);
    }

    /// <summary>Builds a reply whose message fits the wire limit, cut at a character boundary.</summary>
    public static ErrorReply Create(ErrorCode code, string message)
    {
        var clean = new StringBuilder(message.Length);
        foreach (var c in message)
        {
            clean.Append(char.IsControl(c) ? ' ' : c);
        }

        var text = clean.ToString();
        while (Encoding.UTF8.GetByteCount(text) > MaxMessageBytes)
        {
            text = text[..^1];
            if (text.Length > 0 && char.IsHighSurrogate(text[^1]))
            {
                text = text[..^1];
            }
        }

        return new ErrorReply(code, text);
    }
}

/// <summary>What a <see cref="ControlRequest"/> asks for.</summary>
public enum ControlAction : byte
{
    Start = 1,
    Stop = 2,
    Restart = 3,
    Logs = 4,
    Reload = 5,
    /// <summary>The pair: hand the group to the peer (from the active node) or ask for it (from the standby).</summary>
    Switchover = 6,
    /// <summary>The pair: return the group to the preferred node.</summary>
    Failback = 7,
    /// <summary>The pair: this node may not become active (an active node hands the group over first).</summary>
    Standby = 8,
    /// <summary>The pair: lift <see cref="Standby"/>.</summary>
    Unstandby = 9,
    /// <summary>The pair: after a split brain, the node named in the request's name keeps its data.</summary>
    Resolve = 10,
    /// <summary>Replication: returns once every change made before it is durable on the peer (the barrier); with the
    /// name <see cref="ControlRequest.SyncApplied"/>, once it is also applied, visible in the peer's replica.</summary>
    ReplicationSync = 11,
    /// <summary>Replication: compare the replica with the active's tree by block hashes; list the differences.</summary>
    ReplicationVerify = 12,
    /// <summary>Replication: verify, and resync a replica found to differ, then verify again.</summary>
    ReplicationRepair = 13,
}

/// <summary>Control a supervised service, reload (Name empty), or the pair (Name empty, or the survivor's node name
/// for resolve). Lines is how many output lines logs returns.</summary>
public sealed record ControlRequest(ControlAction Action, string Name, uint Lines) : IMessage<ControlRequest>
{
    /// <summary><see cref="ControlAction.ReplicationSync"/>'s name for a barrier that waits until the peer applied
    /// the changes (`apphbctl replication sync --applied`), not only until they are durable there.</summary>
    public const string SyncApplied = "applied";

    public static FrameType Type => FrameType.Control;

    public int PayloadSize => 1 + PayloadWriter.SizeOf(Name) + 4;

    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteByte((byte)Action);
        writer.WriteString(Name);
        writer.WriteUInt32(Lines);
    }

    public static ControlRequest Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var action = reader.ReadByte("action");
        if (action is < (byte)ControlAction.Start or > (byte)ControlAction.ReplicationRepair)
        {
            throw new ProtocolException(ErrorCode.InvalidArgument, $"Control frame: field 'action' {action} is not 1 (start) to 13 (replication repair)");
        }

        var name = reader.ReadString("name", FrameFormat.MaxNameBytes);
        var named = (ControlAction)action is ControlAction.Start or ControlAction.Stop or ControlAction.Restart or ControlAction.Logs;
        if (name.Length == 0 && (named || (ControlAction)action == ControlAction.Resolve))
        {
            throw new ProtocolException(ErrorCode.InvalidArgument, named
                ? $"Control frame: field 'name' must name a service for {(ControlAction)action}"
                : "Control frame: field 'name' must name the surviving node for Resolve");
        }

        var lines = reader.ReadUInt32("lines");
        reader.EnsureEnd();
        return new ControlRequest((ControlAction)action, name, lines);
    }
}

/// <summary>On an event stream: <paramref name="Count"/> events, the first of them numbered
/// <paramref name="FirstSequence"/>, were dropped for this watcher because it did not read fast enough. It comes before
/// the next event the watcher does receive; the events it names are not sent again.</summary>
public sealed record EventsLostReply(long FirstSequence, long Count) : IMessage<EventsLostReply>
{
    public static FrameType Type => FrameType.EventsLost;

    public int PayloadSize => 16;

    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteUInt64((ulong)FirstSequence);
        writer.WriteUInt64((ulong)Count);
    }

    public static EventsLostReply Read(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(Type, payload);
        var first = reader.ReadUInt64("first_sequence");
        var count = reader.ReadUInt64("count");
        reader.EnsureEnd();
        if (first > long.MaxValue || count > long.MaxValue)
        {
            throw new ProtocolException(ErrorCode.Malformed, "EventsLost frame: first_sequence and count must be below 2^63");
        }

        return new EventsLostReply((long)first, (long)count);
    }
}
