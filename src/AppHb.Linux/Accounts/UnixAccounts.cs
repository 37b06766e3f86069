namespace AppHb.Linux.Accounts;

/// <summary>Group lookup and ownership changes for the daemon's socket.</summary>
public static class UnixAccounts
{
    /// <summary>Resolves a group name (or a numeric gid) through NSS.</summary>
    public static unsafe bool TryGetGroupId(string nameOrId, out uint gid)
    {
        ArgumentNullException.ThrowIfNull(nameOrId);
        if (uint.TryParse(nameOrId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out gid))
        {
            return true;
        }

        var buffer = new byte[16 * 1024];
        Interop.Group group;
        Interop.Group* result = null;
        fixed (byte* bytes = buffer)
        {
            var rc = Interop.GetGrNamR(nameOrId, &group, bytes, (nuint)buffer.Length, &result);
            if (rc == 0 && result != null)
            {
                gid = group.Gid;
                return true;
            }
        }

        gid = 0;
        return false;
    }

    /// <summary>chown(path, -1, gid).</summary>
    /// <exception cref="IOException">The kernel refused; the message names the path and errno.</exception>
    public static void ChangeGroup(string path, uint gid)
    {
        if (Interop.Chown(path, uint.MaxValue, gid) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new IOException($"cannot change the group of {path} to {gid}: {Interop.Describe(errno)}");
        }
    }

    /// <summary>The kernel id of the calling thread (what sched_setscheduler and /proc/PID/task speak of).</summary>
    public static int CurrentThreadId => Interop.GetTid();
}
