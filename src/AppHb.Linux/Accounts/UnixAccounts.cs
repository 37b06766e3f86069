using System.Runtime.InteropServices;

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

    /// <summary>Who is at the other end of a connected Unix socket: SO_PEERCRED, recorded by the kernel at connect(),
    /// so a client cannot claim another's identity.</summary>
    public static (int Pid, uint Uid, uint Gid) PeerOf(System.Net.Sockets.Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var credentials = Interop.GetPeerCredentials(socket);
        return (credentials.Pid, credentials.Uid, credentials.Gid);
    }

    /// <summary>A file's owner and permission bits (statx, following symlinks).</summary>
    public static (uint Uid, uint Gid, UnixFileMode Mode) OwnerOf(string path)
    {
        Span<byte> span = stackalloc byte[Interop.StatxSize];
        if (Interop.StatxInto(path, 0, Interop.STATX_MODE | Interop.STATX_UID, span) is var errno and not 0)
        {
            throw new IOException($"{path}: {Interop.Describe(errno)}");
        }

        return (System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(span[Interop.StatxUidOffset..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(span[Interop.StatxGidOffset..]),
            (UnixFileMode)(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(span[Interop.StatxModeOffset..]) & 0xFFF));
    }

    /// <summary>The daemon's effective uid.</summary>
    public static uint EffectiveUserId => Interop.GetEUid();

    /// <summary>A user account as NSS resolves it (a name, or a numeric uid that has an entry).</summary>
    public readonly record struct UserAccount(string Name, uint Uid, uint Gid, string Home);

    /// <summary>Resolves a user name or numeric uid through NSS.</summary>
    public static unsafe bool TryGetUser(string nameOrId, out UserAccount account)
    {
        ArgumentNullException.ThrowIfNull(nameOrId);
        var buffer = new byte[16 * 1024];
        Interop.Passwd passwd;
        Interop.Passwd* result = null;
        fixed (byte* bytes = buffer)
        {
            var rc = uint.TryParse(nameOrId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var uid)
                ? Interop.GetPwUidR(uid, &passwd, bytes, (nuint)buffer.Length, &result)
                : Interop.GetPwNamR(nameOrId, &passwd, bytes, (nuint)buffer.Length, &result);
            if (rc == 0 && result != null)
            {
                account = new UserAccount(System.Runtime.InteropServices.Marshal.PtrToStringUTF8(passwd.Name) ?? nameOrId, passwd.Uid, passwd.Gid,
                    System.Runtime.InteropServices.Marshal.PtrToStringUTF8(passwd.Directory) ?? "/");
                return true;
            }
        }

        account = default;
        return false;
    }

    /// <summary>chown(path, uid, gid).</summary>
    /// <exception cref="IOException">The kernel refused; the message names the path and errno.</exception>
    public static void ChangeOwner(string path, uint uid, uint gid)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Interop.Chown(path, uid, gid) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new IOException($"chown {path} to {uid}:{gid} failed: {Interop.Describe(errno)} (errno {errno})");
        }
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
