using System.Globalization;
using System.Text;
using AppHb.Core.Cluster;
using AppHb.Linux.Files;

namespace AppHb.Cluster.State;

/// <summary>What a node must remember across restarts: its own boot epoch (datagrams are numbered per boot, and a
/// number is never reused: the peer's replay window refuses anything older), the peer's last boot epoch seen (so
/// datagrams of the peer's earlier boots stay refused after this node restarts), and its data generations, newest
/// first (who may become active is decided by them).</summary>
public sealed record NodeState(ulong BootEpoch, ulong PeerEpoch, IReadOnlyList<DataGeneration> Generations)
{
    public bool Equals(NodeState? other) => other is not null && BootEpoch == other.BootEpoch && PeerEpoch == other.PeerEpoch
        && Generations.SequenceEqual(other.Generations);

    public override int GetHashCode() => HashCode.Combine(BootEpoch, PeerEpoch, Generations.Count);
}

/// <summary>Keeps <see cref="NodeState"/> in one small text file (apphbd's state directory, e.g.
/// /var/lib/apphb/cluster.state), replaced durably on every change (<see cref="DurableFile"/>): after a power loss it is
/// the last state saved, never half of one. A file that does not read is an error naming the file and line, never a
/// silent reset: forgetting generations could let a stale node become active.</summary>
public sealed class NodeStateStore(string path)
{
    private const string Heading = "# apphbd cluster state: written by apphbd on every role change; do not edit";

    public string Path { get; } = path;

    /// <summary>The saved state, or null when this node has none yet (its first start in a pair).</summary>
    /// <exception cref="InvalidDataException">The file does not read; the message names the file and line.</exception>
    public NodeState? Load()
    {
        if (!File.Exists(Path))
        {
            return null;
        }

        ulong? epoch = null, peerEpoch = null;
        List<DataGeneration>? generations = null;
        var number = 0;
        foreach (var line in File.ReadLines(Path))
        {
            number++;
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (parts[0])
            {
                case "version" when parts.Length == 2 && parts[1] == "1":
                    break;
                case "version":
                    throw Invalid(number, $"version {string.Join(' ', parts.Skip(1))} is not one this apphbd reads (1)");
                case "boot-epoch" when parts.Length == 2 && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var e):
                    epoch = e;
                    break;
                case "peer-epoch" when parts.Length == 2 && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var p):
                    peerEpoch = p;
                    break;
                case "generations" when parts.Length is > 1 and <= GenerationHistory.Capacity + 1:
                    generations = [.. parts.Skip(1).Select(g => ParseGeneration(g, number))];
                    break;
                default:
                    throw Invalid(number, $"\"{line}\" is not a boot-epoch, peer-epoch, generations or version line this apphbd reads");
            }
        }

        return epoch is null || peerEpoch is null || generations is null
            ? throw Invalid(number, "boot-epoch, peer-epoch and generations are all required")
            : new NodeState(epoch.Value, peerEpoch.Value, generations);
    }

    /// <summary>Saves durably: when this returns, the state survives a power loss.</summary>
    public void Save(NodeState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Generations.Count is 0 or > GenerationHistory.Capacity)
        {
            throw new ArgumentException($"a node keeps 1 to {GenerationHistory.Capacity} generations, not {state.Generations.Count}", nameof(state));
        }

        var text = new StringBuilder()
            .Append(Heading).Append('\n')
            .Append("version 1\n")
            .Append(CultureInfo.InvariantCulture, $"boot-epoch {state.BootEpoch}\n")
            .Append(CultureInfo.InvariantCulture, $"peer-epoch {state.PeerEpoch}\n")
            .Append("generations ").AppendJoin(' ', state.Generations.Select(g => g.ToString())).Append('\n')
            .ToString();
        DurableFile.Replace(Path, Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Starts a boot: the next boot epoch is saved before it is returned, so no two boots share one. It is
    /// also never below the wall clock's seconds since 1970, so that a node whose state was lost (a replaced disk)
    /// still numbers its datagrams above every earlier boot's, as long as its clock is not set back.</summary>
    public NodeState Boot(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        var previous = Load() ?? new NodeState(0, 0, [DataGeneration.None]);
        var clock = (ulong)Math.Max(0, time.GetUtcNow().ToUnixTimeSeconds());
        var booted = previous with { BootEpoch = Math.Max(previous.BootEpoch + 1, clock) };
        Save(booted);
        return booted;
    }

    private DataGeneration ParseGeneration(string text, int line)
    {
        var at = text.IndexOf('@', StringComparison.Ordinal);
        return at > 0
            && ulong.TryParse(text.AsSpan(0, at), NumberStyles.None, CultureInfo.InvariantCulture, out var generation)
            && ushort.TryParse(text.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var node)
            ? new DataGeneration(generation, node)
            : throw Invalid(line, $"\"{text}\" is not a generation (NUMBER@NODE)");
    }

    private InvalidDataException Invalid(int line, string what) => new($"{Path}:{line}: {what}");
}
