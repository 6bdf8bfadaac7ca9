#!/usr/bin/env bash
# audit_e2e.sh - the gateway end to end with the audit trail off, in batch
# durability and in sync durability (and batch with capture: full): one
# worker pinned to core 0, wrk (bench/post.lua, 32 connections, 10 s) on
# core 1, the simulated provider, non-streamed chat requests (bench/request.json).
# Prints req/s, server CPU per request (from /proc/PID/stat: all the
# gateway's threads, the store writer included) and p50/p99 latency, then
# runs `airlock audit verify` on the batch and sync stores.  Run it on a quiet
# machine; compare rows of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
make >/dev/null
B=build/rel/airlock
DUR=${BENCH_DUR:-10}
CONNS=${BENCH_CONNS:-32}
DIR=$(mktemp -d /tmp/al_audit_e2e_XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
$B audit keygen --out "$DIR/sign.key" >/dev/null
$B audit keygen --master --out "$DIR/master.key" >/dev/null
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)
printf '| audit | req/s | server CPU / request | p50 | p99 |\n|---|---|---|---|---|\n'
for mode in off batch full sync; do
    port=$((20000 + RANDOM % 20000))
    case $mode in
    off) audit="audit: {enabled: false}" ;;
    batch) audit="audit: {signing_key: $DIR/sign.key}" ;;
    full) audit="audit: {signing_key: $DIR/sign.key, capture: full, master_keys: [{id: k1, file: $DIR/master.key}]}" ;;
    sync) audit="audit: {signing_key: $DIR/sign.key, durability: sync}" ;;
    esac
    cat > "$DIR/$mode.yaml" <<YAML
server: {listen: 127.0.0.1:$port, admin_listen: "off", workers: 1}
store: {url: sqlite://$DIR/$mode.db}
log: {level: warn}
providers: {sim: {type: simulated}}
models: {gpt-4o-mini: {provider: sim, price: {input: 0.15, output: 0.6}}}
agents: {bench: {owner: bench, models: [gpt-4o-mini]}}
$audit
YAML
    key=$($B keys create --config "$DIR/$mode.yaml" --agent bench 2>/dev/null | tail -n1)
    taskset -c 0 $B serve --config "$DIR/$mode.yaml" 2>"$DIR/$mode.log" &
    pid=$!
    for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    t0=$(ticks $pid)
    out=$(BENCH_BODY=bench/request.json BENCH_KEY=$key taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" \
          --latency -s bench/post.lua "http://127.0.0.1:$port/v1/chat/completions")
    t1=$(ticks $pid)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f µs", t / hz / n * 1e6}')
    printf '| %s | %s | %s | %s | %s |\n' "$mode" "$rps" "$cpu" "$p50" "$p99"
    kill -TERM $pid; wait $pid || true
    if [[ $mode != off ]]; then $B audit verify --config "$DIR/$mode.yaml" >&2; fi
done
