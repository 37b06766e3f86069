namespace AppHb.Testing;

/// <summary>A tmpfs mounted on a directory of a test for its lifetime: a second, real filesystem (a rename into it
/// from the disk fails with EXDEV), without a block device. Root only, as the pair's tests are.</summary>
public sealed class TmpfsMount : IAsyncDisposable
{
    private TmpfsMount(string directory) => Directory = directory;

    public string Directory { get; }

    /// <exception cref="InvalidOperationException">mount refused (the message says why).</exception>
    public static async Task<TmpfsMount> MountAsync(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var mounted = await ProcessRunner.RunAsync("mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "apphb-test", directory);
        return mounted.Code == 0 ? new TmpfsMount(directory) : throw new InvalidOperationException($"mount -t tmpfs on {directory} failed: {mounted.StandardError}");
    }

    public async ValueTask DisposeAsync() =>
        // Lazy: a file a test left open does not keep it mounted after the test.
        await ProcessRunner.RunAsync("umount", "-l", Directory);
}
