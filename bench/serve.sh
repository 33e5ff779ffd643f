#!/usr/bin/env bash
# Benchmarks `warden serve` (release build) from a second process:
#  1. wrk: requests/s and p99 of GET /healthz and of an authenticated cheap endpoint
#     (GET /v1/executions/<unknown id>: API-key lookup + rate limits + an audit write).
#  2. p50/p99 of POST /v1/executions for Python `print(1)` against `warden run` of the same
#     program, sequentially, in the same run.
# Usage: bench/serve.sh [RUNS] (default 50). Needs root, wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
cargo build --release -q -p warden
W=$PWD/target/x86_64-unknown-linux-gnu/release/warden
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/warden.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$DIR/data"
[rate_limit]
per_principal_per_minute = 100000000
per_client_per_minute = 100000000
burst = 1000000
TOML
KEY=$("$W" keys create --config "$DIR/warden.toml" --name bench --scope execute 2>/dev/null)
: >"$DIR/err"
"$W" serve --config "$DIR/warden.toml" >"$DIR/out" 2>"$DIR/err" &
PID=$!
until grep -q '^listening on' "$DIR/err"; do sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$DIR/err")
until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.1; done

echo "== wrk GET /healthz (2 threads, 16 connections, 10 s)"
wrk -t2 -c16 -d10s --latency "$BASE/healthz" | grep -E 'Requests/sec|^ +(50|99)%'
echo "== wrk GET /v1/executions/none with an API key (auth + rate limit + audit write)"
wrk -t2 -c16 -d10s --latency -H "Authorization: Bearer $KEY" "$BASE/v1/executions/none" \
  | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx'

echo "== print(1): POST /v1/executions vs warden run, $RUNS runs each, interleaved"
echo 'print(1)' >"$DIR/main.py"
for _ in $(seq "$RUNS"); do
  # One line per run: client-seen latency (ms) and the Outcome's wall_time_ms (the sandbox's
  # own span), so the cost each front end adds around the same sandbox run is visible.
  curl -s -w ' %{time_total}\n' "$BASE/v1/executions" -H "Authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"language":"python","code":"print(1)"}' >>"$DIR/api"
  # EPOCHREALTIME: bash's own clock, so no extra process is timed along with warden.
  start=$EPOCHREALTIME
  "$W" run --json --no-stdin --file "$DIR/main.py:main.py" -- /usr/bin/python3 /work/main.py \
    >"$DIR/one"
  end=$EPOCHREALTIME
  tail -n 1 "$DIR/one" >>"$DIR/run"
  echo " $(python3 -c "print($end - $start)")" >>"$DIR/run"
done
grep 'path=/v1/executions' "$DIR/err" "$DIR/out" 2>/dev/null | grep -o 'elapsed_ms=[0-9.]*' \
  | cut -d= -f2 | tail -n "$RUNS" >"$DIR/elapsed" || true
python3 - "$DIR/api" "$DIR/run" "$DIR/elapsed" <<'PY'
import json, sys
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
def api_rows(path):
    for line in open(path):
        body, total = line.rsplit(" ", 1)
        yield float(total) * 1000, json.loads(body)["wall_time_ms"]
def run_rows(path):
    lines = [l for l in open(path).read().split("\n") if l.strip()]
    for outcome, took in zip(lines[0::2], lines[1::2]):
        yield float(took) * 1000, json.loads(outcome)["wall_time_ms"]
api, run = list(api_rows(sys.argv[1])), list(run_rows(sys.argv[2]))
for name, rows in (("POST /v1/executions", api), ("warden run", run)):
    total = [t for t, _ in rows]
    over = [t - w for t, w in rows]
    print(f"{name:20s} n={len(rows)} p50={pct(total, 50):.1f} ms p99={pct(total, 99):.1f} ms"
          f"  sandbox wall p50={pct([w for _, w in rows], 50):.1f} ms"
          f"  around the sandbox p50={pct(over, 50):.2f} ms")
print(f"API minus warden run: p50 {pct([t for t, _ in api], 50) - pct([t for t, _ in run], 50):+.2f} ms")
elapsed = [float(l) for l in open(sys.argv[3]) if l.strip()]
if len(elapsed) == len(api):
    inside = [e - w for e, (_, w) in zip(elapsed, api)]
    print(f"server-side (request log elapsed_ms - wall_time_ms): p50 {pct(inside, 50):.2f} ms, "
          f"p99 {pct(inside, 99):.2f} ms")
PY
