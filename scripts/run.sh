#!/usr/bin/env bash
# `make run`: start airlock on the quickstart configuration, with a key for
# the quickstart agent printed first (created once and kept in .airlock-key).
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=examples/quickstart.yaml
./airlock check --config "$cfg" >/dev/null
keyfile=.airlock-key
idfile=.airlock-key-id
# Reuse the saved key while it is still active in the store; otherwise make one.
active=0
if [[ -s $keyfile && -s $idfile && -f airlock.db ]]; then
  id=$(cat "$idfile")
  if ./airlock keys list --config "$cfg" --json 2>/dev/null | grep -q "\"id\":\"$id\".*\"status\":\"active\""; then
    active=1
  fi
fi
if [[ $active -eq 0 ]]; then
  info=$(./airlock keys create --config "$cfg" --agent quickstart --label "make run" 2>&1 >"$keyfile")
  grep -o 'key_[0-9a-f]*' <<<"$info" | head -1 > "$idfile"
fi
key=$(cat "$keyfile")
cat <<MSG

  airlock is starting on http://127.0.0.1:8080  (admin and metrics: http://127.0.0.1:8081)

  agent key (quickstart):  $key

  try it:
    curl -s http://127.0.0.1:8080/v1/chat/completions \\
      -H "Authorization: Bearer $key" -H "Content-Type: application/json" \\
      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'

  streaming: add "stream": true.  Metrics: curl -s http://127.0.0.1:8081/metrics
  Stop with Ctrl-C.

MSG
exec ./airlock serve --config "$cfg"
