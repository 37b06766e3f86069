#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine, installing what the tests need first.
# Ends with one totals line of its own: "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

# What the tests need beyond the .NET SDK: a C compiler and the kernel uAPI headers (interop layout checks),
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ -f /usr/include/linux/watchdog.h ] && [ -f /usr/include/linux/gpio.h ] || missing+=(linux-libc-dev)
# systemd's own tools check the units under systemd/ (no systemd needs to run).
command -v systemd-analyze >/dev/null 2>&1 && command -v systemd-sysusers >/dev/null 2>&1 || missing+=(systemd)
# The .deb is built and checked with Debian's own tools.
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
# The gpio-wdt device-tree overlay under hw/ is compiled.
command -v dtc >/dev/null 2>&1 || missing+=(device-tree-compiler)
# The appliance rig: a Debian image (debootstrap, cached in hw/cache/) booted in QEMU with an i6300esb watchdog.
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
# The pair's tests make their own network namespaces, veth pairs and per-namespace sysctls.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v sysctl >/dev/null 2>&1 || missing+=(procps)
# Replication's sync-mode test blocks the replication port alone in a node's namespace with nftables.
command -v nft >/dev/null 2>&1 || missing+=(nftables)
# The pair's tests scrape /metrics inside a node's namespace with curl.
command -v curl >/dev/null 2>&1 || missing+=(curl)
# Supervisor tests: a real HTTP server and an unmodified sd_notify daemon (python3), setpriv for service users.
[ -x /usr/bin/python3 ] || missing+=(python3)
[ -x /usr/bin/setpriv ] || missing+=(util-linux)
# /metrics is checked with promtool and scraped by a real Prometheus server.
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# SNMP: a real snmpd as AgentX master, net-snmp's tools and snmptrapd, and libsmi's smilint/smidump for APPHB-MIB.
command -v snmpd >/dev/null 2>&1 || missing+=(snmpd)
command -v snmpbulkwalk >/dev/null 2>&1 || missing+=(snmp)
command -v snmptrapd >/dev/null 2>&1 || missing+=(snmptrapd)
command -v smilint >/dev/null 2>&1 && command -v smidump >/dev/null 2>&1 || missing+=(smitools)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing test prerequisites: ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" || exit 1
fi

dotnet build AppHb.sln -c Release -warnaserror || { echo "tests: 0 passed, 1 failed, 0 skipped"; exit 1; }

results=TestResults
rm -rf "$results"
# One project at a time: the integration suite asserts timings and shares two cores with the daemon it tests.
dotnet test AppHb.sln -c Release --no-build -maxcpucount:1 --logger "trx" --results-directory "$results" "$@"
status=$?

# apphbd ships compiled ahead of time: the integration tests that start a daemon run once more against the native
# executable, so it does everything they ask of the JIT build (the package and the rig use it already).
native=$(mktemp -d)
trap 'rm -rf "$native"' EXIT
if dotnet publish src/AppHb.Daemon -c Release -r linux-x64 -o "$native" > "$native.log" 2>&1; then
    APPHB_TEST_DAEMON="$native/apphbd" dotnet test tests/AppHb.Integration.Tests -c Release --no-build \
        --filter "FullyQualifiedName!~ApplianceRigTests&FullyQualifiedName!~DebianPackageTests&FullyQualifiedName!~PublishedDaemonTests&FullyQualifiedName!~ClientPackageTests" \
        --logger "trx;LogFileName=native-daemon.trx" --results-directory "$results" "$@" || status=1
else
    cat "$native.log"
    echo "the native apphbd did not publish"
    status=1
fi
rm -f "$native.log"

passed=0; failed=0; skipped=0; files=0
for trx in "$results"/*.trx; do
    [ -f "$trx" ] || continue
    files=$((files + 1))
    counters=$(grep -o '<Counters [^>]*>' "$trx")
    value() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
    passed=$((passed + $(value passed)))
    failed=$((failed + $(value failed) + $(value error) + $(value timeout) + $(value aborted)))
    skipped=$((skipped + $(value total) - $(value executed)))
done
# Every test project reports once, the integration tests twice (JIT and native daemon).
projects=$(( $(find tests -name '*.Tests.csproj' | wc -l) + 1 ))
if [ "$files" -lt "$projects" ]; then
    # A test host that crashed leaves no results file: count it as a failure, never as silence.
    echo "only $files of $projects test projects reported results"
    failed=$((failed + projects - files))
    status=1
fi
[ "$failed" -gt 0 ] && status=1
# The appliance rig's measured timings (kill-to-restart, hang-to-detection, last tickle to watchdog fire).
timings=$(grep -oh 'rig timing [^<]*' "$results"/*.trx 2>/dev/null | sed 's/&gt;/>/g; s/&lt;/</g; s/&amp;/\&/g' | sort)
[ -n "$timings" ] && printf '%s\n' "$timings"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
