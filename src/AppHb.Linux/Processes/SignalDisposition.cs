using System.Runtime.InteropServices;

namespace AppHb.Linux.Processes;

/// <summary>What the process does on a signal before anything handles it.</summary>
public static class SignalDisposition
{
    /// <summary>Sets <paramref name="signal"/> back to its default disposition. A process started under nohup (or from
    /// any parent that ignored the signal) inherits "ignore" across exec, and the runtime leaves an ignored signal
    /// ignored even when a handler is registered for it: a daemon whose reload is SIGHUP would silently never reload.
    /// Call it before registering the handler.</summary>
    /// <exception cref="IOException">The kernel refused.</exception>
    public static void Default(int signal)
    {
        if (Interop.Signal(signal, Interop.SIG_DFL) == Interop.SIG_ERR)
        {
            throw new IOException($"cannot set signal {signal} to its default disposition: {Interop.Describe(Marshal.GetLastPInvokeError())}");
        }
    }
}
