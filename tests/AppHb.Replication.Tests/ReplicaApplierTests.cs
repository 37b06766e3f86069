using AppHb.Core.Cluster;
using AppHb.Replication.Apply;
using AppHb.Replication.CrashWorker;
using AppHb.Replication.Journal;
using AppHb.Testing;

namespace AppHb.Replication.Tests;

/// <summary>The applier on a real filesystem: every kind of record, and a real applier process killed at random
/// moments while it rewrites files: each file is always one of its real versions, never a mix.</summary>
public sealed class ReplicaApplierTests : IDisposable
{
    private static readonly DataGeneration Generation = new(1, 1);
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Records_of_every_kind_change_the_replica_as_they_say()
    {
        var applier = new ReplicaApplier(_directory.Path);
        var root = _directory.Path;

        applier.Apply(new DirectoryRecord(1, Generation, "etc/apphb", 0b111_101_000));
        applier.Apply(new CreateRecord(2, Generation, "etc/apphb/a.conf", 0b110_100_000));
        applier.Apply(new WriteRecord(3, Generation, "etc/apphb/a.conf", 10, 4, [new BlockChange(0, "abcd"u8.ToArray()), new BlockChange(2, "ij"u8.ToArray())]));
        Assert.Equal("abcd\0\0\0\0ij", File.ReadAllText(Path.Combine(root, "etc/apphb/a.conf")));
        // Only block 1 changes, and the file shrinks: block 0 stays, block 2 goes.
        applier.Apply(new WriteRecord(4, Generation, "etc/apphb/a.conf", 6, 4, [new BlockChange(1, "EF"u8.ToArray())]));
        Assert.Equal("abcdEF", File.ReadAllText(Path.Combine(root, "etc/apphb/a.conf")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(Path.Combine(root, "etc/apphb/a.conf")));

        applier.Apply(new AttributesRecord(5, Generation, "etc/apphb/a.conf", 0b100_000_000, 0, 0, 1_700_000_000_123_456_700));
        Assert.Equal(UnixFileMode.UserRead, File.GetUnixFileMode(Path.Combine(root, "etc/apphb/a.conf")));
        Assert.Equal(DateTime.UnixEpoch.AddTicks(17_000_000_001_234_567), File.GetLastWriteTimeUtc(Path.Combine(root, "etc/apphb/a.conf")));

        applier.Apply(new SymlinkRecord(6, Generation, "etc/apphb/current", "a.conf"));
        Assert.Equal("a.conf", new FileInfo(Path.Combine(root, "etc/apphb/current")).LinkTarget);
        applier.Apply(new RenameRecord(7, Generation, "etc/apphb/a.conf", "var/lib/b.conf"));
        Assert.False(File.Exists(Path.Combine(root, "etc/apphb/a.conf")));
        Assert.Equal("abcdEF", File.ReadAllText(Path.Combine(root, "var/lib/b.conf")));
        applier.Apply(new DeleteRecord(8, Generation, "etc/apphb/current"));
        applier.Apply(new DeleteRecord(9, Generation, "etc/apphb"));
        Assert.False(Directory.Exists(Path.Combine(root, "etc/apphb")));
        // Nothing left beside the files: every temporary file was renamed into place.
        Assert.Equal(["b.conf"], Directory.GetFiles(Path.Combine(root, "var/lib")).Select(Path.GetFileName));
    }

    [Fact]
    public void A_record_naming_a_path_outside_the_replica_is_refused_before_anything_is_touched()
    {
        var applier = new ReplicaApplier(Path.Combine(_directory.Path, "replica"));
        var outside = Path.Combine(_directory.Path, "outside");
        var error = Assert.Throws<IOException>(() => applier.Apply(new CreateRecord(1, Generation, "../outside", 0b110_000_000)));
        Assert.Contains("outside the replicated root", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(outside));
    }

    [Fact]
    public async Task An_applier_killed_at_random_moments_leaves_every_file_at_one_of_its_real_versions()
    {
        const int Files = 3;
        var random = new Random();
        var checkedVersions = 0;
        for (var trial = 0; trial < 30; trial++)
        {
            var root = Path.Combine(_directory.Path, $"trial{trial}");
            var applied = new int[Files];
            await KilledWorker.RunAsync([root, Files.ToString(System.Globalization.CultureInfo.InvariantCulture)], line =>
            {
                var parts = line.Split(' ');
                applied[int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture)] = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            }, lines: 3, maxDelayMs: 150, random);

            for (var file = 0; file < Files; file++)
            {
                var content = File.ReadAllBytes(Path.Combine(root, FileVersions.Name(file)));
                // The file is the version last reported, or the next (applied, killed before it was reported).
                Assert.True(new[] { applied[file], applied[file] + 1 }.Any(v => FileVersions.At(file, v, 4096).AsSpan().SequenceEqual(content)),
                    $"trial {trial}: file {file} ({content.Length} bytes) is neither version {applied[file]} nor {applied[file] + 1}");
                checkedVersions++;
            }
        }

        Assert.Equal(30 * Files, checkedVersions);
    }
}
