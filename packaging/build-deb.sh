#!/usr/bin/env bash
# Builds the apphb .deb from NativeAOT publishes of apphbd and apphbctl (one native executable each).
#   packaging/build-deb.sh [OUTPUT-DIRECTORY]     (default: artifacts/)
# Prints the path of the package on its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/artifacts}" && cd "${1:-$root/artifacts}" && pwd)
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$root/Directory.Build.props")-1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg

publish() { # project, output
    dotnet publish "$root/src/$1" -c Release -r linux-x64 -o "$2" >&2
}
publish AppHb.Daemon "$stage/apphbd"
publish AppHb.Cli "$stage/apphbctl"

install -D -m 0755 "$stage/apphbd/apphbd" "$pkg/usr/sbin/apphbd"
install -D -m 0755 "$stage/apphbctl/apphbctl" "$pkg/usr/sbin/apphbctl"
install -d -m 0755 "$pkg/etc/apphb"
"$pkg/usr/sbin/apphbd" --print-default-config > "$pkg/etc/apphb/apphbd.yaml"
chmod 0644 "$pkg/etc/apphb/apphbd.yaml"
install -D -m 0644 "$root/systemd/apphbd.service" "$pkg/lib/systemd/system/apphbd.service"
install -D -m 0644 "$root/systemd/90-apphb.preset" "$pkg/lib/systemd/system-preset/90-apphb.preset"
install -D -m 0644 "$root/systemd/apphb.sysusers.conf" "$pkg/usr/lib/sysusers.d/apphb.conf"
install -D -m 0644 "$root/systemd/apphb.tmpfiles.conf" "$pkg/usr/lib/tmpfiles.d/apphb.conf"
# Level 4: the MIB where net-snmp's tools look by default, and snmpd's AgentX settings in its include directory.
install -D -m 0644 "$root/src/AppHb.Export/Snmp/APPHB-MIB.txt" "$pkg/usr/share/snmp/mibs/APPHB-MIB.txt"
install -D -m 0644 "$root/systemd/snmpd-apphb.conf" "$pkg/etc/snmp/snmpd.conf.d/apphb.conf"
for page in apphbd.8 apphbctl.8 apphbd.yaml.5; do
    section=${page##*.}
    install -D -m 0644 "$root/packaging/man/$page" "$pkg/usr/share/man/man$section/$page"
    gzip -9n "$pkg/usr/share/man/man$section/$page"
done
install -D -m 0644 "$root/packaging/debian/copyright" "$pkg/usr/share/doc/apphb/copyright"
sed "s/@VERSION@/$version/" "$root/packaging/debian/changelog" | gzip -9n > "$pkg/usr/share/doc/apphb/changelog.Debian.gz"
chmod 0644 "$pkg/usr/share/doc/apphb/changelog.Debian.gz"
install -D -m 0644 "$root/packaging/debian/lintian-overrides" "$pkg/usr/share/lintian/overrides/apphb"

install -d -m 0755 "$pkg/DEBIAN"
sed "s/@VERSION@/$version/" "$root/packaging/debian/control" > "$pkg/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)" >> "$pkg/DEBIAN/control"
for script in postinst prerm postrm; do
    install -m 0755 "$root/packaging/debian/$script" "$pkg/DEBIAN/$script"
done
printf '%s\n' /etc/apphb/apphbd.yaml /etc/snmp/snmpd.conf.d/apphb.conf > "$pkg/DEBIAN/conffiles"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"

deb="$out/apphb_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"
