#!/usr/bin/env bash
# Where one `warden run -- /bin/true` spends its time: records scheduler and system-call
# tracepoints (perf record: low overhead, unlike perf trace) over RUNS executions and prints,
# for each event, its median time in ms after the warden process was exec'd, labelled by
# process role (cli, stage1, pid1, prog, and their threads).
#
# Usage: bench/timeline.sh [WARDEN_BINARY] [RUNS]     (needs perf; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
warden="${1:-$PWD/target/x86_64-unknown-linux-gnu/release/warden}"
runs="${2:-40}"
data="$(mktemp)"
trap 'rm -f "$data"' EXIT
events=sched:sched_process_exec,sched:sched_process_fork,sched:sched_process_exit
for s in unshare pivot_root seccomp sendmsg landlock_restrict_self close_range mkdir rmdir exit_group; do
  events="$events,syscalls:sys_enter_$s"
done
events="$events,syscalls:sys_exit_unshare,syscalls:sys_exit_umount,syscalls:sys_exit_recvmsg,syscalls:sys_exit_wait4"
perf record -q -o "$data" -e "$events" -- \
  sh -c "for i in \$(seq $runs); do '$warden' run --no-stdin -- /bin/true; done" >/dev/null 2>&1
perf script -i "$data" -F pid,tid,time,event,trace 2>/dev/null | python3 -c '
import collections, re, statistics, sys
binary = sys.argv[1].rsplit("/", 1)[-1]
runs, cur = [], None
for line in sys.stdin:
    m = re.match(r"\s*(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
    if not m:
        continue
    pid, tid, t, event, rest = int(m[1]), int(m[2]), float(m[3]) * 1e3, m[4].split(":")[1], m[5]
    if (event == "sched_process_exec" and rest.split()[0].endswith("/" + binary)
            and (cur is None or pid not in cur["role"])):
        cur = {"t0": t, "role": {pid: "cli"}, "n": collections.Counter(), "ev": []}
        runs.append(cur)
        continue
    if cur is None:
        continue
    if event == "sched_process_fork":
        parent = int(re.search(r" pid=(\d+)", rest)[1])
        child = int(re.search(r"child_pid=(\d+)", rest)[1])
        role = cur["role"].get(parent)
        if role is None:
            continue
        if role == "cli":
            new = "cli-thread" if "stage1" in cur["role"].values() else "stage1"
        else:
            new = {"stage1": "pid1", "pid1": "prog"}.get(role, role + "-child")
        cur["role"][child] = new
        key = f"{role} forks {new}"
    else:
        if pid not in cur["role"]:
            continue
        key = cur["role"][pid] + ("" if tid == pid else "-thread") + ":" + event
    cur["n"][key] += 1
    count = cur["n"][key]
    cur["ev"].append((t - cur["t0"], f"{key}#{count}"))
times = collections.defaultdict(list)
for run in runs:
    for t, key in run["ev"]:
        times[key].append(t)
print(f"{len(runs)} runs of {sys.argv[1]}")
for key, ts in sorted(times.items(), key=lambda kv: statistics.median(kv[1])):
    if len(ts) >= 0.75 * len(runs):
        print("%8.3f  %s" % (statistics.median(ts), key))
' "$warden"
