using System.Diagnostics;
using System.Net;
using AppHb.Linux.Network;

namespace AppHb.Testing;

/// <summary>Watches a <see cref="PairRig"/> every few milliseconds from outside the daemons: which node holds the
/// service IP on an interface that is up (read through rtnetlink from a thread inside each node's namespace) and which
/// node's group service runs (its process, found in /proc). Two holders or two running groups in one sample is a
/// violation, recorded with when and what.</summary>
public sealed class PairChecker : IAsyncDisposable
{
    private readonly PairRig _rig;
    private readonly CancellationTokenSource _stop = new();
    private readonly bool[] _holds = new bool[3];
    /// <summary>Per node: a moment at which the other node held the address while this node's latest sample (before
    /// it) held it too; this node's next sample decides.</summary>
    private readonly bool[] _pending = new bool[3];
    private readonly Lock _sampleGate = new();
    private readonly List<Task> _loops = [];
    private readonly Lock _gate = new();
    private readonly List<string> _violations = [];
    private (string? What, TimeSpan At) _lastRecorded;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _samples;

    public PairChecker(PairRig rig, TimeSpan period)
    {
        _rig = rig ?? throw new ArgumentNullException(nameof(rig));
        Period = period;
        foreach (var me in new[] { 1, 2 })
        {
            _loops.Add(rig.Node(me).Run(() => WatchAddress(me)));
        }

        _loops.Add(Task.Run(WatchGroupAsync));
    }

    public TimeSpan Period { get; }

    /// <summary>Samples of the group's processes taken so far.</summary>
    public long Samples => Interlocked.Read(ref _samples);

    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_gate)
            {
                return [.. _violations];
            }
        }
    }

    /// <summary>The nodes holding the service IP, as last sampled.</summary>
    public bool Holds(int me)
    {
        lock (_sampleGate)
        {
            return _holds[me];
        }
    }

    private int WatchAddress(int me)
    {
        var ip = IPAddress.Parse(PairRig.ServiceIp);
        using var table = InterfaceAddressTable.Open();
        while (!_stop.IsCancellationRequested)
        {
            bool holds;
            try
            {
                var lan = LinkInterface.Resolve("lan0");
                holds = LinkInterface.IsUp("lan0") && table.List().Any(a => a.InterfaceIndex == lan.Index && a.Address.Equals(ip));
            }
            catch (IOException)
            {
                holds = false;
            }

            // The two nodes are sampled by two threads: the other node's latest sample may be older than this one,
            // and a hand-over takes a few milliseconds. An overlap counts only when the other node held the address
            // both before and after this sample.
            lock (_sampleGate)
            {
                if (_pending[me])
                {
                    _pending[me] = false;
                    if (holds)
                    {
                        Record("both nodes hold the service IP");
                    }
                }

                if (holds && _holds[3 - me])
                {
                    _pending[3 - me] = true;
                }

                _holds[me] = holds;
            }

            Thread.Sleep(Period);
        }

        return 0;
    }

    private async Task WatchGroupAsync()
    {
        var running = new bool[3];
        while (!_stop.IsCancellationRequested)
        {
            running[1] = running[2] = false;
            foreach (var process in Directory.EnumerateDirectories("/proc"))
            {
                if (!char.IsAsciiDigit(process[^1]))
                {
                    continue;
                }

                string command;
                try
                {
                    command = await File.ReadAllTextAsync(Path.Combine(process, "cmdline"));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue;
                }

                if (command.Contains("answer.py\0node1", StringComparison.Ordinal) && command.Contains(_rig.Directory, StringComparison.Ordinal))
                {
                    running[1] = true;
                }
                else if (command.Contains("answer.py\0node2", StringComparison.Ordinal) && command.Contains(_rig.Directory, StringComparison.Ordinal))
                {
                    running[2] = true;
                }
            }

            Interlocked.Increment(ref _samples);
            if (running[1] && running[2])
            {
                Record("both nodes run the group");
            }

            await Task.Delay(Period);
        }
    }

    private void Record(string what)
    {
        lock (_gate)
        {
            // One line per kind and second: a violation that lasts is one finding, not a thousand.
            var now = _clock.Elapsed;
            if (what != _lastRecorded.What || now - _lastRecorded.At > TimeSpan.FromSeconds(1))
            {
                _violations.Add($"{now.TotalSeconds:0.000} s: {what}");
                _lastRecorded = (what, now);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
        _stop.Dispose();
    }
}
