namespace AppHb.Testing;

/// <summary>The fence agents the tests drive (tests/AppHb.Cluster.Tests/Agents), installed into a test's own directory.</summary>
public static class TestFenceAgents
{
    /// <summary>Copies agent <paramref name="name"/> into <paramref name="directory"/>, executable by its owner; its path.</summary>
    public static string Install(string directory, string name)
    {
        var agent = Path.Combine(directory, name);
        File.Copy(Path.Combine(RepositoryPaths.Root, "tests", "AppHb.Cluster.Tests", "Agents", name), agent);
        File.SetUnixFileMode(agent, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        return agent;
    }
}
