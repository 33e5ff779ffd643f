#!/usr/bin/env bash
# Start-up cost of one sandboxed execution: `warden run` vs bubblewrap, side by side, in one
# hyperfine run. Prints hyperfine's table and the median ratio warden/bwrap per program.
#
# bwrap sets up fewer layers (no seccomp, no cgroups, no landlock); the bar is still to be no
# slower than it for /bin/true (ratio <= 1.0).
#
# Usage: bench/run.sh [RUNS]      (needs: hyperfine, bwrap, python3; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"
cargo build --release --quiet
warden="$PWD/target/x86_64-unknown-linux-gnu/release/warden"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

bwrap_cmd="bwrap --unshare-all --die-with-parent --ro-bind /usr /usr \
  --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin \
  --proc /proc --dev /dev --tmpfs /tmp --cap-drop ALL"

for prog in "/bin/true" "/usr/bin/python3 -c pass"; do
  name="$(basename "${prog%% *}")"
  hyperfine --warmup 10 --runs "$runs" -N --export-json "$out/$name.json" \
    -n "warden $prog" "$warden run --no-stdin -- $prog" \
    -n "bwrap $prog" "$bwrap_cmd $prog"
  python3 - "$out/$name.json" "$prog" <<'PY'
import json, sys
r = {x["command"].split(" ")[0]: x for x in json.load(open(sys.argv[1]))["results"]}
w, b = r["warden"], r["bwrap"]
print(f"RESULT {sys.argv[2]}: warden median {w['median']*1e3:.2f} ms, bwrap median {b['median']*1e3:.2f} ms, "
      f"ratio {w['median']/b['median']:.2f}")
PY
done
