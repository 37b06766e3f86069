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
    public void Writeback_is_started_for_a_written_file_and_refused_for_a_pipe_with_the_content_unchanged()
    {
        var file = _directory.File("file");
        var content = new byte[4 << 20];
        new Random(7).NextBytes(content);
        using (var stream = new FileStream(file, FileMode.Create, FileAccess.Write))
        {
            stream.Write(content);
            stream.Flush();
            Assert.True(DurableFile.StartWriteback(stream.SafeFileHandle, 0, content.Length));
        }

        Assert.Equal(content, File.ReadAllBytes(file));
        // The kernel answers ESPIPE for a pipe: the call reached it with that descriptor.
        using var server = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.Out);
        using var pipe = new Microsoft.Win32.SafeHandles.SafeFileHandle(server.SafePipeHandle.DangerousGetHandle(), ownsHandle: false);
        Assert.False(DurableFile.StartWriteback(pipe, 0, 4096));
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

    [Fact]
    public async Task A_modification_time_set_to_the_nanosecond_reads_back_so_and_coreutils_agrees()
    {
        var file = _directory.File("file");
        File.WriteAllText(file, "x");
        // 2026-11-30T12:34:56.123456789Z: the last two digits are below what .NET's own file times hold.
        const long Time = 1_796_042_096_123_456_789;
        FileTimes.SetModified(file, Time);
        var status = FileStatus.Of(file)!.Value;
        Assert.Equal(Time, status.ModifiedNanoseconds);
        Assert.True(status.IsRegularFile);
        var stat = await ProcessRunner.RunAsync("stat", "--format=%.9Y", file);
        Assert.Equal("1796042096.123456789", stat.StandardOutput.Trim());

        using (var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Write("more"u8);
            stream.Flush();
            FileTimes.SetModified(stream.SafeFileHandle, Time - 1_000_000_000, file);
        }

        Assert.Equal(Time - 1_000_000_000, FileStatus.Of(file)!.Value.ModifiedNanoseconds);
        // Before 1970 too (a negative time: the seconds round down, the nanoseconds stay positive).
        FileTimes.SetModified(file, -1_500_000_000);
        Assert.Equal("-1.500000000", (await ProcessRunner.RunAsync("stat", "--format=%.9Y", file)).StandardOutput.Trim());
    }

    [Fact]
    public void A_symlink_is_itself_or_its_target_and_a_missing_path_is_null()
    {
        var target = _directory.File("target");
        Directory.CreateDirectory(target);
        var link = _directory.File("link");
        File.CreateSymbolicLink(link, target);
        Assert.True(FileStatus.Of(link)!.Value.IsDirectory);
        Assert.Equal(0xA000u, FileStatus.Of(link, followSymlinks: false)!.Value.Mode & 0xF000);
        Assert.Null(FileStatus.Of(_directory.File("missing")));
        Assert.Null(FileStatus.Of(_directory.File("missing/below")));
        File.WriteAllText(_directory.File("file"), "x");
        Assert.Null(FileStatus.Of(_directory.File("file/below")));
        Assert.Throws<IOException>(() => FileTimes.SetModified(_directory.File("missing"), 0));
    }
}
