#!/usr/bin/env bash
# Measures the alternative to MiniKu's own Kubernetes API handler:
# k8s.io/apiserver's generic server over NATS KV (this module) against
# `miniku up`, on this machine, one after the other. Prints each one's
# binary size, idle RSS (after --idle, default 30s) and the p50/p99/max of
# 1,000 sequential GETs of one pod over HTTPS with a bearer token, then the
# ratios. Needs root (miniku up). Usage: sudo bench/k8sapiserver/run.sh [--idle 30s] [--n 1000]
set -euo pipefail
export GOTOOLCHAIN=local
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$root" && go build -o "$out/miniku" .)
(cd "$here" && go build -o "$out/k8sapiserver" .)
"$out/k8sapiserver" measure --miniku "$out/miniku" --self "$out/k8sapiserver" "$@"
