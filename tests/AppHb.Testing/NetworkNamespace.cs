using System.Runtime.InteropServices;

namespace AppHb.Testing;

/// <summary>A network namespace made for one test and removed after it (with every interface in it): addresses in it
/// exist nowhere else, so a test can take, announce and remove them without touching the host's network. Code runs
/// inside it on a thread of its own (<see cref="Run{T}"/>): sockets opened there stay in the namespace.</summary>
public sealed class NetworkNamespace : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private static int s_created;

    private NetworkNamespace(string name) => Name = name;

    public string Name { get; }

    /// <summary>Creates <c>PREFIX-PID-N</c> (unique per test process) with its loopback up.</summary>
    public static async Task<NetworkNamespace> CreateAsync(string prefix)
    {
        var name = $"{prefix}-{Environment.ProcessId}-{Interlocked.Increment(ref s_created)}";
        await RunIpAsync("netns", "add", name);
        var created = new NetworkNamespace(name);
        await created.IpAsync("link", "set", "lo", "up");
        return created;
    }

    /// <summary>Joins two namespaces with a veth pair, each end up with its address (CIDR).</summary>
    public static async Task ConnectAsync(NetworkNamespace a, string aInterface, string aAddress, NetworkNamespace b, string bInterface, string bAddress)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        await RunIpAsync("link", "add", aInterface, "netns", a.Name, "type", "veth", "peer", "name", bInterface, "netns", b.Name);
        await a.IpAsync("address", "add", aAddress, "dev", aInterface);
        await b.IpAsync("address", "add", bAddress, "dev", bInterface);
        await a.IpAsync("link", "set", aInterface, "up");
        await b.IpAsync("link", "set", bInterface, "up");
    }

    /// <summary><c>ip -n NAME ARGS</c>; its standard output, or an exception with what it said.</summary>
    public Task<string> IpAsync(params string[] args) => RunIpAsync(["-n", Name, .. args]);

    /// <summary>Writes a sysctl inside the namespace (net.* values are per namespace).</summary>
    public async Task SysctlAsync(string key, string value)
    {
        var (code, output) = await ProcessRunner.RunAsync("ip", "netns", "exec", Name, "sysctl", "-q", "-w", $"{key}={value}");
        if (code != 0)
        {
            throw new InvalidOperationException($"sysctl {key}={value} in {Name} failed: {output}");
        }
    }

    /// <summary>Runs <paramref name="work"/> on a new thread that has joined this namespace.</summary>
    public Task<T> Run<T>(Func<T> work)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using (var handle = File.OpenHandle($"/run/netns/{Name}"))
                {
                    if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                    {
                        throw new InvalidOperationException($"setns into {Name} failed: errno {Marshal.GetLastPInvokeError()}");
                    }
                }

                result.SetResult(work());
            }
#pragma warning disable CA1031 // Handed to the test, which rethrows it.
            catch (Exception e)
#pragma warning restore CA1031
            {
                result.SetException(e);
            }
        })
        { IsBackground = true, Name = $"netns {Name}" };
        thread.Start();
        return result.Task;
    }

    public void Dispose() => _ = ProcessRunner.RunAsync("ip", "netns", "delete", Name).GetAwaiter().GetResult();

    private static async Task<string> RunIpAsync(params string[] args)
    {
        var (code, stdout, stderr) = await ProcessRunner.RunAsync("ip", args);
        return code == 0 ? stdout : throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({code}): {stderr}");
    }

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int type);
}
