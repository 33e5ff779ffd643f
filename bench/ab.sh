#!/usr/bin/env bash
# Alternating A/B timing: runs each command once per round, in turn, RUNS rounds, and prints the
# median wall time of each. Use it to compare two builds on a machine whose speed drifts (a
# shared VM): commands timed minutes apart (separate hyperfine runs) cannot be compared there,
# commands alternating within one loop can. Times include bash's fork/exec (~1 ms), the same
# for every command.
#
# Usage: bench/ab.sh RUNS 'COMMAND A' 'COMMAND B' [...]
#   e.g. bench/ab.sh 300 '/tmp/old/warden run --no-stdin -- /bin/true' \
#                        'target/x86_64-unknown-linux-gnu/release/warden run --no-stdin -- /bin/true'
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RUNS 'COMMAND' ['COMMAND' ...]" >&2
  exit 2
fi
runs=$1
shift
for ((i = 0; i < runs; i++)); do
  for ((j = 1; j <= $#; j++)); do
    start=$EPOCHREALTIME
    eval "${!j}" >/dev/null 2>&1 || true
    end=$EPOCHREALTIME
    echo "$j $start $end"
  done
done | python3 -c '
import statistics, sys
times = {}
for line in sys.stdin:
    j, start, end = line.split()
    times.setdefault(int(j), []).append((float(end) - float(start)) * 1e3)
for j in sorted(times):
    print("%8.2f ms median  %s" % (statistics.median(times[j]), sys.argv[j]))
' "$@"
