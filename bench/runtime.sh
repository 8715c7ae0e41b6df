#!/usr/bin/env bash
# Container start, side by side: `miniku runtime run`, crun and runc running
# /bin/true in one busybox root filesystem, plus BenchmarkContainerStart (the
# start inside a long-lived process, as in the kubelet) and the memory a
# running container's shim and init (its PID 1, the reaper) keep. Needs
# root; installs runc and crun from Debian when missing.
# Usage: bench/runtime.sh [ITERATIONS] (default 30).
set -euo pipefail
N=${1:-30}
cd "$(dirname "$0")/.."
REPO=$PWD
if [ "$(id -u)" != 0 ]; then echo "bench/runtime.sh: needs root" >&2; exit 1; fi

if [ -z "${MINIKU_BENCH_INNER:-}" ]; then
	if ! command -v runc >/dev/null || ! command -v crun >/dev/null; then
		(apt-get install -y -qq runc crun >/dev/null 2>&1 ||
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc crun >/dev/null))
	fi
	command -v busybox >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null)
	go build -o "$REPO/.bin/miniku" .
	go test -c -o "$REPO/.bin/runtime.test" ./runtime/
	# crun refuses hybrid cgroups unless the empty v2 hierarchy is out of
	# sight; all three run in the same private mount namespace, alike.
	exec unshare --mount --propagation private env MINIKU_BENCH_INNER=1 "$0" "$N"
fi
if [ -d /sys/fs/cgroup/unified ]; then umount -l /sys/fs/cgroup/unified 2>/dev/null || true; fi
# All three keep their state under /run (/run/crun, /run/runc,
# /run/miniku/runtime), which is a tmpfs on a standard host but plain disk on
# this machine: give it the standard tmpfs, for all three alike.
RUN_FS=$(stat -f -c %T /run)
if [ "$RUN_FS" != tmpfs ]; then mount -t tmpfs -o mode=755 tmpfs /run; fi

WORK=$(mktemp -d /tmp/miniku-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/bundle/rootfs
mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/proc" "$ROOTFS/dev" "$ROOTFS/sys" "$ROOTFS/tmp"
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for a in $("$ROOTFS/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOTFS/etc/passwd"
(cd "$WORK/bundle" && runc spec && sed -i -e 's/"terminal": true/"terminal": false/' -e 's|"sh"|"/bin/true"|' config.json)
MINIKU=$REPO/.bin/miniku
STATE=/run/miniku/runtime

now() { date +%s%N; }
declare -a T_MINIKU T_CRUN T_RUNC
for i in $(seq "$N"); do
	t0=$(now); "$MINIKU" runtime run --root "$STATE" --rootfs "$ROOTFS" --id "b$i" -- /bin/true; t1=$(now)
	T_MINIKU+=($((t1 - t0)))
	t0=$(now); crun run --bundle "$WORK/bundle" "c$i" >/dev/null; t1=$(now)
	T_CRUN+=($((t1 - t0)))
	t0=$(now); runc run --bundle "$WORK/bundle" "r$i" >/dev/null; t1=$(now)
	T_RUNC+=($((t1 - t0)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.4f", m/1e9}'; }
M=$(median "${T_MINIKU[@]}"); C=$(median "${T_CRUN[@]}"); R=$(median "${T_RUNC[@]}")

# Inside a long-lived process, interleaved with crun run (the CLI) in the
# same process: medians per start, in seconds.
# Twice: state on /run like crun's (the fair comparison), then on this
# machine's disk, where a kubelet keeps it (under --data-dir).
gobench() {
	(cd runtime && MINIKU_BENCH_ROOT="$1" MINIKU_BENCH_CRUN_BUNDLE="$WORK/bundle" "$REPO/.bin/runtime.test" -test.run '^$' \
		-test.bench '^BenchmarkContainerStart$' -test.benchtime "${N}x" 2>/dev/null | grep '^BenchmarkContainerStart')
}
metric() { echo "$1" | awk -v m="$2" '{for (i = 1; i < NF; i++) if ($(i+1) == m) print $i}'; }
BENCH=$(gobench /run/miniku/bench)
G=$(metric "$BENCH" median-s)
GC=$(metric "$BENCH" crun-median-s)
mkdir -p "$WORK/disk"
BENCH=$(gobench "$WORK/disk")
GD=$(metric "$BENCH" median-s)
GDC=$(metric "$BENCH" crun-median-s)

# Memory a running container costs the host besides its own processes:
# the PSS of its shim and of its init (PID 1, the reaper), with 5
# containers running.
PSS=() PSS_INIT=()
for i in 1 2 3 4 5; do
	"$MINIKU" runtime run --root "$STATE" --rootfs "$ROOTFS" --id "pss$i" --grace 100ms -- sleep 1000 &
done
for i in 1 2 3 4 5; do
	until [ -s "$STATE/pss$i/state.json" ]; do sleep 0.05; done
done
for i in 1 2 3 4 5; do
	shim=$(grep -o '"shimPid":[0-9]*' "$STATE/pss$i/state.json" | cut -d: -f2)
	init=$(grep -o '"pid":[0-9]*' "$STATE/pss$i/state.json" | cut -d: -f2)
	PSS+=($(awk '/^Pss:/ {print $2}' "/proc/$shim/smaps_rollup"))
	PSS_INIT+=($(awk '/^Pss:/ {print $2}' "/proc/$init/smaps_rollup"))
done
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
medianInt() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
P=$(medianInt "${PSS[@]}")
PI=$(medianInt "${PSS_INIT[@]}")

echo
echo "container start, /bin/true in a busybox rootfs, $N runs each, medians (wall); state under /run (tmpfs):"
printf '  %-44s %8s s\n' "miniku runtime run" "$M" "crun run ($(crun --version | head -1 | awk '{print $3}'))" "$C" \
	"runc run ($(runc --version | head -1 | awk '{print $3}'))" "$R"
echo "in a long-lived process (BenchmarkContainerStart), interleaved with crun run:"
printf '  %-44s %8s s\n' "miniku Start+Wait, state on /run" "$G" "crun run" "$GC" \
	"miniku Start+Wait, state on disk ($(stat -f -c %T "$WORK"))" "$GD" "crun run" "$GDC"
awk -v m="$M" -v c="$C" -v r="$R" -v g="$G" -v gc="$GC" -v gd="$GD" -v gdc="$GDC" 'BEGIN {
	printf "ratio miniku/crun, CLI against CLI          %.2f  (target <= 1.0)\n", m / c
	printf "ratio miniku/runc, CLI against CLI          %.2f\n", m / r
	printf "ratio miniku in-process/crun CLI            %.2f  (target <= 0.5; state on disk: %.2f)\n", g / gc, gd / gdc
}'
echo "memory per running container: shim ${P} KiB + init ${PI} KiB = $((P + PI)) KiB PSS (medians; target < 1024)"
