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
W=$PWD/target/release/warden
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
"$W" serve --config "$DIR/warden.toml" >/dev/null 2>"$DIR/err" &
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
TIMEFORMAT=%3R
for _ in $(seq "$RUNS"); do
  curl -s -o /dev/null -w '%{time_total}\n' "$BASE/v1/executions" -H "Authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"language":"python","code":"print(1)"}' >>"$DIR/api"
  { time "$W" run --no-stdin --file "$DIR/main.py:main.py" -- /usr/bin/python3 /work/main.py >/dev/null; } 2>>"$DIR/run"
done
python3 - "$DIR/api" "$DIR/run" <<'PY'
import sys, statistics
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
for name, path in (("POST /v1/executions", sys.argv[1]), ("warden run", sys.argv[2])):
    xs = [float(l) * 1000 for l in open(path) if l.strip() and l[0].isdigit()]
    print(f"{name:22s} n={len(xs)} p50={pct(xs, 50):.1f} ms p99={pct(xs, 99):.1f} ms")
PY
