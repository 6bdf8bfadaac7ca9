#!/usr/bin/env bash
# guard_latency.sh - what the guardrails add to a request.  Starts two
# `airlock serve` processes on the simulated provider (latency 0), one
# without guardrails and one with every built-in detector on (input PII
# redaction in reversible mode with a custom entity, injection scoring,
# output PII redaction, leakage of the system prompt), pinned to one core,
# and sends the same ~2 KB chat request (system prompt, history, an email,
# a phone number and a card number) to each, one at a time over keep-alive,
# alternating between them so drift hits both alike.  The added time is the
# difference of the servers' CPU time per request (from /proc) and of their own
# latency (arrival to last byte, from the
# event log) at p50 and p99; the client's view is printed too.  Then the
# same for a streamed request: time to first byte and the bytes held back.
# Usage: bash bench/guard_latency.sh [N requests, default 3000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3000}
AIRLOCK=${BENCH_AIRLOCK:-./airlock}
[[ -x $AIRLOCK ]] || make -s airlock
TMP=$(mktemp -d /tmp/airlock-gbench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

write_cfg() { # file port admin guard(0|1)
  cat >"$1" <<YAML
server: {listen: 127.0.0.1:$2, admin_listen: 127.0.0.1:$3, workers: 1}
store: {url: "sqlite://$TMP/$(basename "$1" .yaml).db"}
log: {level: warn}
providers:
  sim: {type: simulated, simulated: {latency_ms: 0, output_tokens: 40, chunks: 8, chunk_interval_ms: 0}}
models:
  gpt-4o-mini: {provider: sim}
agents:
  bench: {owner: bench@example.com, models: [gpt-4o-mini]}
YAML
  if [[ $4 == 1 ]]; then cat >>"$1" <<'YAML'
guardrails:
  entities:
    EMPLOYEE_ID: {regex: 'EMP-[0-9]{6}'}
  input:
    pii: {action: redact, mode: reversible}
    injection: flag
  output:
    pii: redact
    leakage: flag
YAML
  fi
}

declare -A PORT KEY
for v in off on; do
  p=$(free_port); a=$(free_port)
  write_cfg "$TMP/$v.yaml" "$p" "$a" "$([[ $v == on ]] && echo 1 || echo 0)"
  KEY[$v]=$("$AIRLOCK" keys create --config "$TMP/$v.yaml" --agent bench | grep -o 'alk_[A-Za-z0-9_-]*' | head -1)
  taskset -c 0 "$AIRLOCK" serve --config "$TMP/$v.yaml" >"$TMP/$v.log" 2>&1 &
  PIDS+=("$!")
  PORT[$v]=$p
done
for v in off on; do
  for i in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$v]}") 2>/dev/null && break; sleep 0.1; done
done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A PID CPU0
i=0
for v in off on; do PID[$v]=${PIDS[$i]}; i=$((i + 1)); CPU0[$v]=$(cpu_ticks "${PID[$v]}"); done
taskset -c 1 node bench/guard_latency.js --n "$N" \
  --off "http://127.0.0.1:${PORT[off]}" --off-key "${KEY[off]}" \
  --on "http://127.0.0.1:${PORT[on]}" --on-key "${KEY[on]}" --out "$TMP/client.json"
sleep 0.5 # the event log's group commit
HZ=$(getconf CLK_TCK)
for v in off on; do
  t=$(( $(cpu_ticks "${PID[$v]}") - ${CPU0[$v]} ))
  echo "server CPU, guardrails $v: $(awk -v t="$t" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.1f", t / hz * 1e6 / (n + 200) }') µs per request (all threads, $((N + 200)) requests)"
done
for v in off on; do
  "$AIRLOCK" events list --config "$TMP/$v.yaml" --limit 0 --json >"$TMP/$v.events"
done
node bench/guard_latency.js --report --client "$TMP/client.json" --off-events "$TMP/off.events" \
  --on-events "$TMP/on.events"
