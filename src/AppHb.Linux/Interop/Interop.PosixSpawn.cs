using System.Runtime.InteropServices;

namespace AppHb.Linux;

internal static partial class Interop
{
    // posix_spawn(3) in glibc 2.24+ uses clone(CLONE_VM | CLONE_VFORK): no copy of the daemon's (locked, large) address
    // space, and exec failures come back as the return value. Flags from bits/spawn.h.
    internal const short POSIX_SPAWN_SETPGROUP = 0x02;
    internal const short POSIX_SPAWN_SETSIGDEF = 0x04;
    internal const short POSIX_SPAWN_SETSIGMASK = 0x08;
    internal const short POSIX_SPAWN_SETSID = 0x80;

    // The opaque glibc objects are 336 (attr) and 80 (file actions) bytes on 64-bit; sigset_t is 128. Allocated
    // larger so a future glibc growing them cannot overrun.
    internal const int SpawnAttrSize = 512;
    internal const int SpawnFileActionsSize = 256;
    internal const int SigSetSize = 128;

    [LibraryImport(Libc, EntryPoint = "posix_spawn")]
    internal static unsafe partial int PosixSpawn(out int pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_init")]
    internal static unsafe partial int PosixSpawnAttrInit(void* attr);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_destroy")]
    internal static unsafe partial int PosixSpawnAttrDestroy(void* attr);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setflags")]
    internal static unsafe partial int PosixSpawnAttrSetFlags(void* attr, short flags);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setsigmask")]
    internal static unsafe partial int PosixSpawnAttrSetSigMask(void* attr, void* sigset);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setsigdefault")]
    internal static unsafe partial int PosixSpawnAttrSetSigDefault(void* attr, void* sigset);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_init")]
    internal static unsafe partial int PosixSpawnFileActionsInit(void* actions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_destroy")]
    internal static unsafe partial int PosixSpawnFileActionsDestroy(void* actions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_adddup2")]
    internal static unsafe partial int PosixSpawnFileActionsAddDup2(void* actions, int fd, int newFd);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addopen")]
    internal static unsafe partial int PosixSpawnFileActionsAddOpen(void* actions, int fd, byte* path, int oflag, uint mode);

    // glibc 2.29+.
    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addchdir_np")]
    internal static unsafe partial int PosixSpawnFileActionsAddChdir(void* actions, byte* path);

    // glibc 2.34+: closes every descriptor from fd up in the child, so nothing apphbd inherited without
    // close-on-exec (from whoever started it) reaches a service.
    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addclosefrom_np")]
    internal static unsafe partial int PosixSpawnFileActionsAddCloseFrom(void* actions, int fromFd);

    [LibraryImport(Libc, EntryPoint = "sigemptyset")]
    internal static unsafe partial int SigEmptySet(void* set);

    [LibraryImport(Libc, EntryPoint = "sigfillset")]
    internal static unsafe partial int SigFillSet(void* set);

    [LibraryImport(Libc, EntryPoint = "sigdelset")]
    internal static unsafe partial int SigDelSet(void* set, int signal);
}
