using AppHb.Linux.Files;
using AppHb.Testing;

namespace AppHb.Linux.Tests;

/// <summary>Which filesystem a path is on, and how many names a file has: what the replica's staging (a rename
/// into place) and its in-place patches (never into a file with a second name) rest on. Real files, real mounts.</summary>
public sealed class FileSystemsTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Proc_is_another_filesystem_than_a_directory_of_the_disk_and_a_missing_path_is_named()
    {
        Directory.CreateDirectory(_directory.File("sub"));
        Assert.Equal(FileSystems.DeviceOf(_directory.Path), FileSystems.DeviceOf(_directory.File("sub")));
        Assert.NotEqual(FileSystems.DeviceOf("/proc"), FileSystems.DeviceOf(_directory.Path));
        var missing = Assert.Throws<IOException>(() => FileSystems.DeviceOf(_directory.File("missing")));
        Assert.Contains("missing: statx failed", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hard_link_is_counted_and_its_removal_too()
    {
        var file = _directory.File("file");
        File.WriteAllText(file, "x");
        Assert.Equal(1u, FileSystems.LinkCount(file));
        var copy = _directory.File("copy");
        Assert.Equal(0, (await ProcessRunner.RunAsync("ln", file, copy)).Code);
        Assert.Equal(2u, FileSystems.LinkCount(file));
        File.Delete(copy);
        Assert.Equal(1u, FileSystems.LinkCount(file));
    }
}
