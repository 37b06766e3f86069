#!/usr/bin/env bash
# Builds the appliance VM: a Debian 12 root (debootstrap, cached), the apphb .deb installed as on a real appliance,
# the rig's scenario runner, and a raw ext4 disk image.
#   hw/rig/build-image.sh CACHE-DIR DEB [TOOLS-DIR]
# prints the directory holding disk.img, vmlinuz and initrd.img. TOOLS-DIR's executables (the crash worker of the
# power-cut scenario, published NativeAOT) go to /usr/local/lib/apphb-rig/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(mkdir -p "$1" && cd "$1" && pwd)
deb=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
tools=${3:-}
base="$cache/rootfs-base.tar"
if [ ! -f "$base" ]; then
    # Cached between runs: the base system changes only when this list does.
    root=$(mktemp -d)
    debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,kmod,linux-image-amd64,procps,init-system-helpers,libc6,libgcc-s1,libstdc++6 \
        bookworm "$root" http://deb.debian.org/debian >&2
    tar -C "$root" -cf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf "$root"
fi

work="$cache/image"
rm -rf "$work" && mkdir -p "$work/root"
tar -C "$work/root" -xf "$base"
r="$work/root"
echo apphb-rig > "$r/etc/hostname"
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$r/etc/fstab"
# A persistent journal: scenario d reads the previous boot's log after the watchdog reset (journald syncs critical
# messages at once, so apphbd's NODE REBOOT line is on disk before the reset).
mkdir -p "$r/var/log/journal"
cp "$deb" "$r/tmp/apphb.deb"
chroot "$r" dpkg -i /tmp/apphb.deb >&2
rm "$r/tmp/apphb.deb"
# Scenario g installs, upgrades and purges the package under the VM's systemd: the same .deb, and one repacked with
# a higher version (same files), so dpkg runs the upgrade path of the maintainer scripts.
mkdir -p "$r/var/cache/apphb-rig"
cp "$deb" "$r/var/cache/apphb-rig/apphb.deb"
unpacked=$(mktemp -d)
dpkg-deb -R "$deb" "$unpacked"
sed -i 's/^Version: \(.*\)$/Version: \1+rig1/' "$unpacked/DEBIAN/control"
dpkg-deb --root-owner-group -b "$unpacked" "$r/var/cache/apphb-rig/apphb-upgrade.deb" >&2
rm -rf "$unpacked"
# The board profile of the rig's watchdog, two supervised services (scenarios d and f), and the unit enabled as the
# preset says.
cp "$here/../boards/qemu-i6300esb.yaml" "$r/etc/apphb/apphbd.yaml"
cat "$here/rig-services.yaml" >> "$r/etc/apphb/apphbd.yaml"
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf /lib/systemd/system/apphbd.service "$r/etc/systemd/system/multi-user.target.wants/apphbd.service"
install -m 0755 "$here/scenario.sh" "$r/usr/local/sbin/apphb-rig-scenario"
if [ -n "$tools" ]; then
    mkdir -p "$r/usr/local/lib/apphb-rig"
    find "$tools" -maxdepth 1 -type f -perm -u+x -exec install -m 0755 {} "$r/usr/local/lib/apphb-rig/" \;
fi
cat > "$r/etc/systemd/system/apphb-rig.service" <<'UNIT'
[Unit]
Description=AppHb rig scenario runner
After=apphbd.service multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/apphb-rig-scenario
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/apphb-rig.service "$r/etc/systemd/system/multi-user.target.wants/apphb-rig.service"
kernel=$(ls "$r"/boot/vmlinuz-* | head -1)
cp "$kernel" "$work/vmlinuz"
cp "$(ls "$r"/boot/initrd.img-* | head -1)" "$work/initrd.img"
mkfs.ext4 -q -F -L root -d "$r" "$work/disk.img" 2G
rm -rf "$r"
echo "$work"
