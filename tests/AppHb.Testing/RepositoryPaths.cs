namespace AppHb.Testing;

/// <summary>Finds the repository and the built binaries the integration tests start as real processes.</summary>
public static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>The build configuration the tests themselves were built in, so the binaries match.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string DaemonDll => Binary("AppHb.Daemon", "apphbd.dll");

    public static string CliDll => Binary("AppHb.Cli", "apphbctl.dll");

    private static string Binary(string project, string dll)
    {
        var path = Path.Combine(Root, "src", project, "bin", Configuration, "net10.0", dll);
        return File.Exists(path)
            ? path
            : throw new FileNotFoundException($"{path} is not built; build the solution first (tests/run-all.sh does)");
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AppHb.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("AppHb.sln not found above " + AppContext.BaseDirectory);
    }
}
