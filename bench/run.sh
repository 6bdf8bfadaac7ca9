#!/usr/bin/env bash
# run.sh - the airlock benchmark (`make bench`).  Starts two `airlock mock`
# upstreams (fast, and paced: 20 SSE chunks 5 ms apart) pinned to the client
# core, nginx (proxy_pass with upstream keep-alive, unbuffered) and
# `airlock serve` (1 worker, keys, metrics and event log on) pinned to the
# server core, all on 127.0.0.1 ports picked at random.  For each target
# {direct to the mock, nginx, airlock} x {non-stream, stream} it runs wrk for
# throughput (server CPU per request read from /proc/PID/stat, core usage
# from /proc/stat) and bench/ratelat.js for latency at a fixed rate; then
# bench/chunkgap.js for what each proxy does to a paced stream, and
# bench/idleconns.js for memory per idle keep-alive connection.  The target
# airlock-route is the same airlock process called with a two-target fallback
# route (`model: fallback2`: both targets healthy, so the first answers) to
# show what a route costs next to a plain model.  Raw outputs
# go to bench/out/<stamp>/, the report to bench/out/results-<stamp>.md (also
# printed).  Every process it starts is stopped by PID on exit; each step
# has a timeout and steps are skipped past a total time budget (< 5 min).
#
# Knobs (environment): BENCH_DURATION (10 s), BENCH_RATE (200/s),
# BENCH_CONNS (32), BENCH_TARGETS ("direct nginx airlock"),
# BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_AIRLOCK (./airlock),
# BENCH_MOCK_CMD ("$BENCH_AIRLOCK mock"; gets --listen/--latency-ms/--chunks/
# --chunk-interval-ms/--output-tokens), BENCH_IDLE_CONNS (1000),
# BENCH_STREAM_REQUESTS (30), BENCH_BUDGET_S (285).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10}
RATE=${BENCH_RATE:-200}
CONNS=${BENCH_CONNS:-32}
TARGETS=${BENCH_TARGETS:-direct nginx airlock airlock-route}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
AIRLOCK=${BENCH_AIRLOCK:-./airlock}
MOCK_CMD=${BENCH_MOCK_CMD:-$AIRLOCK mock}
NGINX=${BENCH_NGINX:-/usr/sbin/nginx}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
STREAM_REQS=${BENCH_STREAM_REQUESTS:-30}
BUDGET_S=${BENCH_BUDGET_S:-285}
CHUNKS=20
CHUNK_MS=5
BODY=bench/request.json
BODY_STREAM=bench/request-stream.json
PATH_CHAT=/v1/chat/completions
export BENCH_UPSTREAM_KEY=bench-upstream-key

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

for cmd in wrk node taskset curl; do
  command -v "$cmd" >/dev/null || die "$cmd not found (run scripts/deps.sh)"
done
has_target direct || die "BENCH_TARGETS must include direct (the baseline)"
if has_target nginx; then [[ -x $NGINX ]] || die "nginx not found at $NGINX"; fi
read -ra MOCK <<<"$MOCK_CMD"
if has_target airlock || [[ ${MOCK[0]} == "$AIRLOCK" ]]; then
  [[ -x $AIRLOCK ]] || die "$AIRLOCK not built (make airlock)"
fi

WARNING=""
if (( $(nproc) < 2 )); then
  SERVER_CPU=0 CLIENT_CPU=0
  WARNING="one core only: servers and clients share it, figures are not comparable to 2-core runs"
  say "$WARNING"
fi

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUTDIR=bench/out
RUN=$OUTDIR/$STAMP
mkdir -p "$RUN"
RESULTS=$RUN/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d /tmp/airlock-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers may run as nobody
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- process bookkeeping ----------------------------------------------------
PIDS=()      # started by us, stopped last-first
LATE_PIDS=() # children of those (nginx workers), stopped after their parents
declare -A SPID

alive() { # running and not a zombie
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${st:0:1} != Z ]]
}

stop_pid() {
  local pid=$1 i
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  for i in "${LATE_PIDS[@]}"; do stop_pid "$i"; done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bg() { # name cpu cmd...
  local name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$RUN/$name.log" 2>&1 &
  SPID[$name]=$!
  PIDS+=("$!")
}

wait_port() { # name port
  local name=$1 port=$2 i
  for ((i = 0; i < 100; i++)); do
    alive "${SPID[$name]}" || { tail -n 20 "$RUN/$name.log" >&2; die "$name exited during startup"; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$name did not listen on 127.0.0.1:$port within 10 s"
}

# Every server still up?  The first time one is found gone, note how it
# ended (wait status; 128+N is signal N) so a crash is told from a kill.
DEAD_NOTED=0
servers_ok() {
  local name st dead=0
  for name in "${!SPID[@]}"; do
    alive "${SPID[$name]}" && continue
    dead=1
    ((DEAD_NOTED)) && continue
    st=0
    wait "${SPID[$name]}" 2>/dev/null || st=$?
    if ((st > 128)); then st="$st (signal $((st - 128)))"
    elif ((st == 0)); then st="0 (a clean exit: airlock does that only on SIGTERM/SIGINT, so something outside the bench stopped it)"; fi
    note "$name (pid ${SPID[$name]}) died, wait status $st; later steps skipped; log: $RUN/$name.log"
  done
  ((dead)) && DEAD_NOTED=1
  return "$dead"
}

time_ok() { # seconds-needed what
  if (( SECONDS + $1 > BUDGET_S )); then
    note "skipped $2: total time budget of ${BUDGET_S} s reached"
    return 1
  fi
}

note() {
  say "$1"
  NOTE=$1 node -e 'console.log(JSON.stringify({kind:"note",text:process.env.NOTE}))' >>"$RESULTS"
}

rss_kb() { # pids... -> summed VmRSS in kB, or null
  local t=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || { echo null; return; }
    [[ -n $v ]] || { echo null; return; }
    t=$((t + v))
  done
  echo "$t"
}

mem() { echo "{\"kind\":\"mem\",\"what\":\"$1\",\"rss_kb\":$(rss_kb "${@:2}")}" >>"$RESULTS"; }

cpu_ticks() { # pids... -> utime+stime of all their threads, in clock ticks
  local t=0 pid v
  for pid in "$@"; do
    v=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

core_snap() { # cpu -> "busy total" jiffies
  awk -v c="cpu$1" '$1 == c {busy = $2+$3+$4+$7+$8+$9; print busy, busy+$5+$6}' /proc/stat
}

busy_pct() { # "b0 t0" "b1 t1"
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$2"
  awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { if (t > 0) printf "%.1f", 100 * b / t; else print 0 }'
}

# --- ports and upstreams ------------------------------------------------------
read -r P_MOCK P_PACED P_NGX P_NGX_PACED P_AL P_ADMIN < <(node -e '
  const net = require("net"); const ss = []; let k = 0;
  for (let i = 0; i < 6; i++) {
    const s = net.createServer(); ss.push(s);
    s.listen(0, "127.0.0.1", () => { if (++k === 6) {
      console.log(ss.map((x) => x.address().port).join(" ")); ss.forEach((x) => x.close()); } });
  }')
[[ -n $P_ADMIN ]] || die "could not pick free ports"

say "mocks on 127.0.0.1:$P_MOCK (fast) and :$P_PACED (paced), core $CLIENT_CPU"
start_bg mock "$CLIENT_CPU" "${MOCK[@]}" --listen "127.0.0.1:$P_MOCK" --latency-ms 0 \
  --chunks "$CHUNKS" --chunk-interval-ms 0 --output-tokens 64
start_bg mock_paced "$CLIENT_CPU" "${MOCK[@]}" --listen "127.0.0.1:$P_PACED" --latency-ms 0 \
  --chunks "$CHUNKS" --chunk-interval-ms "$CHUNK_MS" --output-tokens 64
wait_port mock "$P_MOCK"
wait_port mock_paced "$P_PACED"

declare -A URL URL_PACED MODEL_PACED SERVER_PIDS
URL[direct]=http://127.0.0.1:$P_MOCK$PATH_CHAT
URL_PACED[direct]=http://127.0.0.1:$P_PACED$PATH_CHAT
SERVER_PIDS[direct]=${SPID[mock]}
KEY=bench-no-key

# --- nginx --------------------------------------------------------------------
if has_target nginx; then
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  client_body_buffer_size 64k;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:$P_MOCK; keepalive 64; keepalive_requests 1000000; }
  upstream paced { server 127.0.0.1:$P_PACED; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$P_NGX;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
  server {
    listen 127.0.0.1:$P_NGX_PACED;
    location / {
      proxy_pass http://paced;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  say "nginx on 127.0.0.1:$P_NGX, core $SERVER_CPU"
  start_bg nginx "$SERVER_CPU" "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
  wait_port nginx "$P_NGX"
  sleep 0.3
  NGINX_WORKERS=$(pgrep -P "${SPID[nginx]}" | tr '\n' ' ')
  for w in $NGINX_WORKERS; do LATE_PIDS+=("$w"); done
  SERVER_PIDS[nginx]="${SPID[nginx]} $NGINX_WORKERS"
  URL[nginx]=http://127.0.0.1:$P_NGX$PATH_CHAT
  URL_PACED[nginx]=http://127.0.0.1:$P_NGX_PACED$PATH_CHAT
  # shellcheck disable=SC2086
  mem nginx_start ${SERVER_PIDS[nginx]}
fi

# --- airlock ------------------------------------------------------------------
if has_target airlock; then
  CFG=$TMP/bench.yaml
  cat >"$CFG" <<EOF
server: {listen: 127.0.0.1:$P_AL, admin_listen: 127.0.0.1:$P_ADMIN, workers: 1}
store: {url: sqlite://$TMP/bench.db}
log: {level: warn}
providers:
  up: {type: openai, base_url: "http://127.0.0.1:$P_MOCK/v1", api_key_env: BENCH_UPSTREAM_KEY}
  paced: {type: openai, base_url: "http://127.0.0.1:$P_PACED/v1", api_key_env: BENCH_UPSTREAM_KEY}
  up2: {type: openai, base_url: "http://127.0.0.1:$P_MOCK/v1", api_key_env: BENCH_UPSTREAM_KEY}
models:
  gpt-4o-mini: {provider: up, model: gpt-4o-mini, price: {input: 0.15, output: 0.60, cached_input: 0.075}, context_window: 128000}
  gpt-4o-mini-b: {provider: up2, model: gpt-4o-mini, price: {input: 0.15, output: 0.60, cached_input: 0.075}, context_window: 128000}
  gpt-4o-mini-paced: {provider: paced, model: gpt-4o-mini, price: {input: 0.15, output: 0.60, cached_input: 0.075}, context_window: 128000}
routes:
  fallback2: {strategy: fallback, targets: [gpt-4o-mini, gpt-4o-mini-b]}
agents:
  bench: {owner: bench@example.com, models: [gpt-4o-mini, gpt-4o-mini-paced, fallback2]}
EOF
  KEY=$(timeout 30 "$AIRLOCK" keys create --config "$CFG" --agent bench 2>"$RUN/keys.log") ||
    { cat "$RUN/keys.log" >&2; die "airlock keys create failed"; }
  KEY=${KEY//[$'\r\n ']/}
  [[ -n $KEY ]] || die "airlock keys create printed no key"
  say "airlock on 127.0.0.1:$P_AL (admin :$P_ADMIN), core $SERVER_CPU"
  start_bg airlock "$SERVER_CPU" "$AIRLOCK" serve --config "$CFG"
  wait_port airlock "$P_AL"
  sleep 1
  URL[airlock]=http://127.0.0.1:$P_AL$PATH_CHAT
  URL_PACED[airlock]=http://127.0.0.1:$P_AL$PATH_CHAT
  MODEL_PACED[airlock]=gpt-4o-mini-paced
  SERVER_PIDS[airlock]=${SPID[airlock]}
  mem airlock_start "${SPID[airlock]}"
  if has_target airlock-route; then
    URL[airlock-route]=${URL[airlock]}
    SERVER_PIDS[airlock-route]=${SPID[airlock]}
    sed 's/"model":"gpt-4o-mini"/"model":"fallback2"/' "$BODY" >"$TMP/route.json"
    sed 's/"model":"gpt-4o-mini"/"model":"fallback2"/' "$BODY_STREAM" >"$TMP/route-stream.json"
  fi
fi

# --- run info -------------------------------------------------------------------
commit=""
if [[ -f .git/HEAD ]]; then
  head=$(<.git/HEAD)
  if [[ $head == "ref: "* ]]; then
    ref=${head#ref: }
    if [[ -f .git/$ref ]]; then commit=$(<".git/$ref")
    elif [[ -f .git/packed-refs ]]; then commit=$(awk -v r="$ref" '$2 == r {print $1}' .git/packed-refs); fi
  else
    commit=$head
  fi
fi
INFO_DATE=$STAMP INFO_COMMIT=${commit:0:12} INFO_WARNING=$WARNING \
INFO_CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) \
INFO_KERNEL=$(uname -sr) INFO_NPROC=$(nproc) \
INFO_VERSIONS="$( { "$NGINX" -v 2>&1 || true; } | head -n1); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2); node $(node -v)" \
INFO_CMD="BENCH_DURATION=$DURATION BENCH_RATE=$RATE BENCH_CONNS=$CONNS BENCH_TARGETS='$TARGETS' bash bench/run.sh" \
node -e '
  const e = process.env;
  console.log(JSON.stringify({
    date: e.INFO_DATE, commit: e.INFO_COMMIT, cpu: e.INFO_CPU, kernel: e.INFO_KERNEL,
    nproc: Number(e.INFO_NPROC), versions: e.INFO_VERSIONS, command: e.INFO_CMD,
    server_cpu: Number(process.argv[1]), client_cpu: Number(process.argv[2]),
    duration: Number(process.argv[3]), rate: Number(process.argv[4]), conns: Number(process.argv[5]),
    body_bytes: Number(process.argv[6]), chunks: Number(process.argv[7]), chunk_ms: Number(process.argv[8]),
    warning: e.INFO_WARNING || undefined }));' \
  "$SERVER_CPU" "$CLIENT_CPU" "$DURATION" "$RATE" "$CONNS" "$(wc -c <"$BODY")" "$CHUNKS" "$CHUNK_MS" \
  >"$RUN/info.json"

# The request body for a mode and target (the route target names the route).
body_for() {
  if [[ ${2:-} == airlock-route ]]; then
    if [[ $1 == stream ]]; then echo "$TMP/route-stream.json"; else echo "$TMP/route.json"; fi
  elif [[ $1 == stream ]]; then echo "$BODY_STREAM"; else echo "$BODY"; fi
}

# --- sanity: every target answers a real completion ----------------------------------
ACTIVE=()
for t in $TARGETS; do
  [[ -n ${URL[$t]:-} ]] || continue
  good=1
  for body in "$(body_for nonstream "$t")" "$(body_for stream "$t")"; do
    code=$(curl -sS -o "$RUN/sanity-$t.out" -w '%{http_code}' --max-time 10 \
      -H 'Content-Type: application/json' -H "Authorization: Bearer $KEY" \
      --data-binary "@$body" "${URL[$t]}" 2>>"$RUN/sanity-$t.err") || code=000
    if [[ $code != 200 ]] || ! grep -q '"choices"' "$RUN/sanity-$t.out"; then
      note "$t answered $code without choices to $(basename "$body"): $(head -c 300 "$RUN/sanity-$t.out" | tr '\n' ' ')"
      good=0
    fi
  done
  if ((good)); then ACTIVE+=("$t"); elif [[ $t == direct ]]; then die "the mock does not answer; see $RUN"; fi
done
say "targets: ${ACTIVE[*]}"


# --- throughput: wrk ----------------------------------------------------------------
for mode in nonstream stream; do
  for t in "${ACTIVE[@]}"; do
    servers_ok || continue
    time_ok $((DURATION + 8)) "wrk $t/$mode" || continue
    say "wrk $t $mode"
    read -ra pids <<<"${SERVER_PIDS[$t]}"
    # warm-up: pools, caches, page faults
    BENCH_BODY=$(body_for "$mode" "$t") BENCH_KEY=$KEY timeout -k 2 20 taskset -c "$CLIENT_CPU" \
      wrk -t1 -c"$CONNS" -d2s --timeout 5s -s bench/post.lua "${URL[$t]}" >/dev/null 2>&1 || true
    c0=$(cpu_ticks "${pids[@]}"); s0=$(core_snap "$SERVER_CPU"); k0=$(core_snap "$CLIENT_CPU")
    rc=0
    BENCH_BODY=$(body_for "$mode" "$t") BENCH_KEY=$KEY timeout -k 2 $((DURATION + 20)) taskset -c "$CLIENT_CPU" \
      wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency -s bench/post.lua "${URL[$t]}" \
      >"$RUN/wrk-$t-$mode.txt" 2>&1 || rc=$?
    c1=$(cpu_ticks "${pids[@]}"); s1=$(core_snap "$SERVER_CPU"); k1=$(core_snap "$CLIENT_CPU")
    if ((rc != 0)); then note "wrk $t/$mode exited $rc"; continue; fi
    node bench/report.js parse-wrk "$RUN/wrk-$t-$mode.txt" --target "$t" --mode "$mode" \
      --cpu-ticks $((c1 - c0)) --clk-tck "$(getconf CLK_TCK)" \
      --server-busy "$(busy_pct "$s0" "$s1")" --client-busy "$(busy_pct "$k0" "$k1")" >>"$RESULTS"
  done
done

# --- latency at a fixed rate ----------------------------------------------------------
for mode in nonstream stream; do
  for t in "${ACTIVE[@]}"; do
    servers_ok || continue
    time_ok $((DURATION + 5)) "fixed-rate $t/$mode" || continue
    say "fixed rate $t $mode"
    timeout -k 2 $((DURATION + 30)) taskset -c "$CLIENT_CPU" node bench/ratelat.js \
      --url "${URL[$t]}" --body "$(body_for "$mode" "$t")" --key "$KEY" --rate "$RATE" \
      --duration "$DURATION" --target "$t" --mode "$mode" >>"$RESULTS" 2>>"$RUN/ratelat.err" ||
      note "ratelat $t/$mode failed: $(tail -n 3 "$RUN/ratelat.err" | tr '\n' ' ')"
  done
done

# --- streaming relay --------------------------------------------------------------------
for t in "${ACTIVE[@]}"; do
  [[ -n ${URL_PACED[$t]:-} ]] || continue
  servers_ok || continue
  time_ok 15 "chunk gaps $t" || continue
  say "chunk gaps $t"
  args=(--url "${URL_PACED[$t]}" --body "$BODY_STREAM" --key "$KEY" --requests "$STREAM_REQS" --target "$t")
  [[ -n ${MODEL_PACED[$t]:-} ]] && args+=(--model "${MODEL_PACED[$t]}")
  timeout -k 2 60 taskset -c "$CLIENT_CPU" node bench/chunkgap.js "${args[@]}" >>"$RESULTS" 2>>"$RUN/chunkgap.err" ||
    note "chunkgap $t failed: $(tail -n 3 "$RUN/chunkgap.err" | tr '\n' ' ')"
done

# --- memory per idle keep-alive connection ----------------------------------------------
for t in airlock nginx; do
  [[ " ${ACTIVE[*]} " == *" $t "* ]] || continue
  servers_ok || continue
  time_ok 20 "idle connections $t" || continue
  say "idle connections $t ($IDLE_CONNS)"
  read -ra pids <<<"${SERVER_PIDS[$t]}"
  timeout -k 2 60 taskset -c "$CLIENT_CPU" node bench/idleconns.js --url "${URL[$t]}" --body "$BODY" \
    --key "$KEY" --n "$IDLE_CONNS" --pids "$(IFS=,; echo "${pids[*]}")" --target "$t" \
    >>"$RESULTS" 2>>"$RUN/idleconns.err" || note "idleconns $t failed: $(tail -n 3 "$RUN/idleconns.err" | tr '\n' ' ')"
done

if [[ " ${ACTIVE[*]} " == *" airlock "* ]] && servers_ok; then
  sleep 1
  mem airlock_end "${SPID[airlock]}"
  if curl -sS --max-time 5 "http://127.0.0.1:$P_ADMIN/metrics" >"$RUN/metrics.txt" 2>/dev/null; then
    n=$(awk '/^airlock_requests_total\{/ {s += $NF} END {printf "%d", s}' "$RUN/metrics.txt")
    note "airlock /metrics after the run: airlock_requests_total sums to $n"
  else
    note "airlock /metrics was not reachable on the admin port"
  fi
fi

# --- report ----------------------------------------------------------------------------------
REPORT=$OUTDIR/results-$STAMP.md
node bench/report.js render "$RESULTS" "$RUN/info.json" >"$REPORT"
cat "$REPORT"
say "report: $REPORT (raw outputs in $RUN/), ${SECONDS} s"
