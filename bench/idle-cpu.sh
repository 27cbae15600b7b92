#!/usr/bin/env bash
# What the platform's services cost when nothing happens: for each service `scripts/up` started
# (its pid files under $STREAMSPACE_STATE/pids), the CPU it used over SECONDS (default 60), in
# cores, and how often its main thread woke up (voluntary context switches per second).
#
#   scripts/up; sleep 30; bench/idle-cpu.sh 60
#
# An idle service should sleep: every wake-up costs CPU (and, on a VM, an exit to the host) even
# when it runs no code of ours. Not a benchmark of load.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
state=${STREAMSPACE_STATE:-$repo/.streamspace}
seconds=${1:-60}
tick=$(getconf CLK_TCK)
declare -A cpu0 wake0
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wakes() { awk '/^voluntary_ctxt_switches/{print $2}' "/proc/$1/task/$1/status"; }
for file in "$state"/pids/*.pid; do
  pid=$(cat "$file"); name=$(basename "$file" .pid)
  kill -0 "$pid" 2>/dev/null || { echo "$name is not running (pid $pid)" >&2; exit 1; }
  cpu0[$name]=$(cpu "$pid"); wake0[$name]=$(wakes "$pid")
done
sleep "$seconds"
printf '%-16s %8s %14s\n' service cores wake-ups/s
for file in "$state"/pids/*.pid; do
  pid=$(cat "$file"); name=$(basename "$file" .pid)
  awk -v c0="${cpu0[$name]}" -v c1="$(cpu "$pid")" -v w0="${wake0[$name]}" -v w1="$(wakes "$pid")" \
    -v s="$seconds" -v t="$tick" -v n="$name" 'BEGIN { printf "%-16s %8.4f %14.1f\n", n, (c1 - c0) / t / s, (w1 - w0) / s }'
done
