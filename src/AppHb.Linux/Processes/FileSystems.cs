namespace AppHb.Linux.Processes;

/// <summary>What a deliberate hardware reset owes the disks.</summary>
public static class FileSystems
{
    /// <summary>sync(2): before apphbd lets the watchdog reset the node, what the journal and the services wrote
    /// reaches the disk; a reset drops the page cache, and with it the reason for the reboot.</summary>
    public static void Sync() => Interop.Sync();
}
