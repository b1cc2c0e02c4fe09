#!/usr/bin/env bash
# Soak test: runs the multi-threaded stress test (crates/hakmem/tests/stress.rs: random sizes,
# cross-thread frees, every block checked) for a given duration, printing the test process's RSS
# every few seconds, then the number of operations checked.
#   scripts/soak.sh [SECONDS]          default 600 (10 minutes)
# Env: HAKMEM_STRESS_THREADS (4), SOAK_INTERVAL (5 s between RSS samples), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
interval="${SOAK_INTERVAL:-5}"
threads="${HAKMEM_STRESS_THREADS:-4}"

exe=$(cargo test --release -p hakmem --test stress --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys, json
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "stress" and m.get("executable"):
        print(m["executable"])')
[ -x "$exe" ] || { echo "soak.sh: could not build the stress test" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "soak.sh: ${secs}s, ${threads} threads, RSS every ${interval}s ($exe)"
HAKMEM_STRESS_SECS="$secs" HAKMEM_STRESS_THREADS="$threads" \
    "$exe" stress_multithreaded_cross_thread_frees --exact --nocapture >"$log" 2>&1 &
pid=$!
start=$(date +%s)
peak=0
printf '%8s %12s %12s\n' "t(s)" "VmRSS(KiB)" "VmHWM(KiB)"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$rss" ]; then
        printf '%8d %12s %12s\n' "$(( $(date +%s) - start ))" "$rss" "$hwm"
        [ "$rss" -gt "$peak" ] && peak=$rss
    fi
    sleep "$interval"
done
status=0
wait "$pid" || status=$?
ops=$(grep -o 'stress: .* ops ([^)]*) in [0-9.]*s' "$log" || true)
echo "soak.sh: ${ops:-no summary line}"
echo "soak.sh: peak sampled VmRSS ${peak} KiB, exit status ${status}"
if [ "$status" -ne 0 ]; then
    tail -50 "$log" >&2
    exit "$status"
fi
