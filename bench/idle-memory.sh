#!/usr/bin/env bash
# Where an idle watcher's and worker's memory goes: starts one watcher and one worker (reconciler)
# from their built output on the cluster of `scripts/cluster` (STREAMSPACE_STATE and
# STREAMSPACE_NATS_PORT as for it), on an empty namespace, with the chart's NODE_OPTIONS, waits
# until both are ready and then IDLE_SECONDS (20), and prints for each its resident memory split
# into anonymous pages (V8's heap, malloc) and file pages (mostly the node binary's), its peak
# (VmHWM), threads and CPU seconds so far.
#
#   pnpm run build; scripts/cluster up
#   bench/idle-memory.sh "<watcher's node flags>" "<worker's node flags>"
#
# With no arguments each runs with the chart's nodeArgs (values.yaml), as deployed. Not a
# benchmark of load: the 1,000-Session bench (pnpm bench) measures peaks under it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
eval "$(scripts/cluster env)"
values=deploy/helm/streamspace/values.yaml
chart_args() { sed -n "/^$1:/,/^[^ #]/s/^  nodeArgs: //p" "$values" | tr -d '"'; }
watcher_args=${1-$(chart_args watcher)}
worker_args=${2-$(chart_args reconciler)}
NODE_OPTIONS=$(sed -n 's/^nodeOptions: //p' "$values")
export NODE_OPTIONS
namespace=idle-memory
kubectl create namespace "$namespace" >/dev/null 2>&1 || true
kubectl apply --server-side -f crds/ >/dev/null

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() {  # service, flags
  # shellcheck disable=SC2086 # flags are words
  WATCH_NAMESPACE=$namespace HTTP_PORT=0 node $2 "services/$1/dist/main.js" >"/tmp/idle-memory-$1.log" 2>&1 &
  pids+=($!)
}
start watcher "$watcher_args"
start reconciler "$worker_args"
# Ready: each logs the address it serves /readyz on.
for i in 0 1; do
  log=/tmp/idle-memory-$([[ $i == 0 ]] && echo watcher || echo reconciler).log
  for _ in $(seq 1 150); do
    port=$(sed -n 's/.*"address":"[^"]*:\([0-9]*\)".*/\1/p' "$log" | head -1)
    [[ -n "$port" ]] && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "${pids[$i]}" || { cat "$log" >&2; exit 1; }
    sleep 0.2
  done
done
sleep "${IDLE_SECONDS:-20}"
for pid in "${pids[@]}"; do
  memory=$(awk '/^Rss:/{r=$2} /^Anonymous:/{a=$2} END{printf "rss %.1f MiB = anon %.1f + file %.1f", r/1024, a/1024, (r-a)/1024}' "/proc/$pid/smaps_rollup")
  peak=$(awk '/^VmHWM:/{printf "peak %.1f MiB", $2/1024} /^Threads:/{printf ", %d threads", $2}' "/proc/$pid/status")
  cpu=$(awk '{printf "cpu %.2f s", ($14+$15)/100}' "/proc/$pid/stat")
  echo "$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed 's|/dist/main.js||; s|services/||'): $memory, $peak, $cpu"
done
