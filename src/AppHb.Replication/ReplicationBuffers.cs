using System.Buffers;

namespace AppHb.Replication;

/// <summary>Where replication's large buffers (a record, its message, its frame: up to 1 MiB each; a file read's
/// chunk) are rented from and given back to. A pool of its own, bounded, rather than <see cref="ArrayPool{T}.Shared"/>:
/// the shared pool keeps up to 32 arrays of a size per core, and one per thread, and trims them only at a full
/// collection, which replication no longer causes; after a bulk copy the standby's resident memory stayed ~87 MB
/// higher with the read-ahead's buffers kept (docs/benchmarks.md). Here at most <see cref="ArraysPerSize"/> of each
/// size stay (20 MiB of the largest at most); more given back at once go to the collector. Static on purpose, as the shared pool
/// is: a pool is a thread-safe cache with nothing a caller could observe but memory.</summary>
internal static class ReplicationBuffers
{
    /// <summary>How many buffers of one size the pool keeps: the standby's payloads held while a cut installs
    /// (<see cref="Transfer.FrameReadAhead.DefaultBudget"/>, 16 MiB of them) and its frame; the sender's record and
    /// frame; the journaler's record and its encoding. Fewer, and a full read-ahead drained gave the rest to the
    /// collector each time: with few collections left, the standby's resident memory grew by ~120 MB of them.</summary>
    public const int ArraysPerSize = 20;

    /// <summary>The largest buffer the pool keeps (a larger one, a record of 1 MiB blocks, is allocated and dropped).</summary>
    public const int LargestKept = 1 << 20;

    public static ArrayPool<byte> Pool { get; } = ArrayPool<byte>.Create(LargestKept, ArraysPerSize);
}
