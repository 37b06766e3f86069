using AppHb.Linux.Files;
using AppHb.Testing;

namespace AppHb.Linux.Tests;

/// <summary>The copy that keeps a diverged replica aside: same inodes for files (no data copied), symlinks as they
/// were, and it keeps the old content once the original is replaced by a rename, as the applier does.</summary>
public sealed class HardLinkedCopyTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Files_are_linked_directories_made_symlinks_copied_and_a_rename_over_the_original_leaves_the_copy_alone()
    {
        var source = Directory.CreateDirectory(_directory.File("tree")).FullName;
        Directory.CreateDirectory(Path.Combine(source, "a", "b"));
        File.WriteAllText(Path.Combine(source, "a", "b", "file"), "old");
        File.WriteAllText(Path.Combine(source, "top"), "top");
        File.CreateSymbolicLink(Path.Combine(source, "link"), "a/b/file");

        var copy = _directory.File("kept");
        Assert.Equal(2, HardLinkedCopy.Make(source, copy));

        Assert.Equal(Inode(Path.Combine(source, "a", "b", "file")), Inode(Path.Combine(copy, "a", "b", "file")));
        Assert.Equal("a/b/file", new FileInfo(Path.Combine(copy, "link")).LinkTarget);
        var replacement = Path.Combine(source, "a", "b", ".new");
        File.WriteAllText(replacement, "new");
        File.Move(replacement, Path.Combine(source, "a", "b", "file"), overwrite: true);
        Assert.Equal("old", File.ReadAllText(Path.Combine(copy, "a", "b", "file")));

        var refused = Assert.Throws<IOException>(() => HardLinkedCopy.Make(source, copy));
        Assert.Contains("exists already", refused.Message, StringComparison.Ordinal);
    }

    private static string Inode(string path) => ProcessRunner.RunAsync("stat", "-c", "%i", path).GetAwaiter().GetResult().StandardOutput.Trim();
}
