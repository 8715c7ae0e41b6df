#!/usr/bin/env bash
# RSS of `miniku up` before, at the peak of and after a mass of pods: one
# replicaset of N replicas (default 100,000) with no node to run them (the
# pods stay Pending, as the issue-12 run of a runaway desiredCount), then
# DELETE of the replicaset and a wait until no pod is left. Prints the RSS
# (and Go's heap figures from /metrics, when it has them) at each point;
# with PROFILE_DIR set, also heap profiles (inuse_space) there.
# Usage: bench/memory.sh [N] (default 100000); AFTER="10 90 420" sets the
# points after the deletion (seconds) to report. Needs nothing but Go.
#
# 2026-12-06, 2 shared cores, 100,000 pods (RSS; heap in use after a GC):
#                 idle   peak         deleted+10s  +90s         +330s
#   before fix    31     474 (300)    637 (240)    302 (238)    341 (263)
#   after fix     34     457 (322)    310 (176)    200 (109)    186 (89)
# What is left is mostly nats-server's (per-subject indexes of the stored
# messages and block caches) and spans that a few live objects keep.
set -euo pipefail
trap 'echo "bench/memory.sh: failed at line $LINENO" >&2' ERR
N=${1:-100000}
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
BIN=${BIN:-$PWD/.bin/miniku}
[ -n "${NOBUILD:-}" ] || go build -o "$BIN" .
WORK=$(mktemp -d)
API=127.0.0.1:${API_PORT:-18480}
MET=127.0.0.1:${METRICS_PORT:-18491}
NATS=127.0.0.1:${NATS_PORT:-18422}
"$BIN" up --nodes 0 --data-dir "$WORK/data" --api-addr "$API" --nats-addr "$NATS" \
	--https-addr "" --insecure-no-auth --nats-context "" --metrics-addr "$MET" --pprof --log-level warn \
	2>"$WORK/up.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "http://$API/healthz" >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/ {printf "%d", $2/1024}' /proc/$PID/status; }
# pods is the number of pods the controller's cache holds (its miniku_pods
# gauge; -1 while the controller is not leading, as when a loaded machine
# delays its lease renewal): a list of 100,000 pods is 40 MB of JSON,
# which, every 2 s, would be most of what is measured.
pods() {
	curl -sf "http://$MET/metrics" | awk '/^miniku_pods\{/ {n += $2; seen = 1} END {printf "%d", seen ? n : -1}' || echo -1
}
# list lists every pod once, as a user would (it fills the JSON cache).
list() {
	for _ in $(seq 30); do
		curl -sf -o /dev/null "http://$API/pods" && return
		sleep 2
	done
	echo "list pods failed" >&2
}
gc() { curl -sf "http://$MET/debug/pprof/heap?gc=1" -o "${1:-/dev/null}"; } # a GC first, as runtime.GC
report() {
	[ -z "${PROFILE_DIR:-}" ] || { mkdir -p "$PROFILE_DIR"; gc "$PROFILE_DIR/heap-$1.pb.gz"; }
	gc
	local heap
	heap=$(curl -sf "http://$MET/debug/pprof/heap?debug=1" | awk '
		/^# HeapInuse/ {hi=$4} /^# HeapIdle/ {id=$4} /^# HeapReleased/ {rel=$4} /^# Stack = / {st=$4}
		END {printf "heap_inuse=%d MB heap_idle=%d MB released=%d MB stacks=%d MB", hi/1048576, id/1048576, rel/1048576, st/1048576}')
	local g
	g=$(curl -sf "http://$MET/debug/pprof/goroutine?debug=1" | awk '/^goroutine profile: total/ {print $4}')
	printf '%-9s pods=%-7s rss=%4s MB  %s goroutines=%s\n' "$1" "$2" "$(rss)" "$heap" "$g"
}
sleep 5
report idle 0
curl -sf -X POST "http://$API/replicasets" -d "{\"name\":\"mass\",\"desiredCount\":$N,\"selector\":{\"app\":\"mass\"},\"template\":{\"image\":\"busybox\",\"command\":[\"sleep\",\"1000\"]}}" >/dev/null
t0=$(date +%s)
while :; do
	n=$(pods); [ "$n" -ge "$N" ] && break
	[ $(($(date +%s) - t0)) -lt 1800 ] || { echo "only $n pods after 1800 s" >&2; break; }
	sleep 2
done
echo "$n pods in $(($(date +%s) - t0)) s"
list
report peak "$n"
curl -sf -X DELETE "http://$API/replicasets/mass" >/dev/null
t0=$(date +%s)
while :; do
	n=$(pods); [ "$n" -eq 0 ] && break
	[ $(($(date +%s) - t0)) -lt 1800 ] || { echo "still $n pods after 1800 s" >&2; break; }
	sleep 2
done
echo "deleted in $(($(date +%s) - t0)) s"
# Points after the last pod went, in seconds: at once; after the caches'
# retention (75 s); after the store compacted the delete markers (5 min
# delay, checked every minute).
t0=$(date +%s)
for at in ${AFTER:-10 90 420}; do
	sleep $((t0 + at - $(date +%s) > 0 ? t0 + at - $(date +%s) : 0))
	report "+${at}s" "$(pods)"
done
