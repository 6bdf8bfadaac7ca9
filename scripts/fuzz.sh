#!/usr/bin/env bash
# Fuzz smoke: runs each libFuzzer target for N seconds on its seed corpus
# (copied to a scratch dir so the committed corpus stays as it is).
set -uo pipefail
secs=${1:-30}
cd "$(dirname "$0")/.."
rc=0; n=0
for f in build/fuzz/fuzz_*; do
  [[ -x $f ]] || continue
  name=$(basename "$f"); name=${name#fuzz_}
  work=$(mktemp -d)
  [[ -d tests/fuzz/corpus/$name ]] && cp -r tests/fuzz/corpus/$name/. "$work/"
  echo "fuzz: $name for ${secs}s"
  if ! "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
        -artifact_prefix="build/fuzz/crash-$name-" "$work" > "build/fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 "build/fuzz/$name.log"; rc=1
  else
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "build/fuzz/$name.log" | tail -1
  fi
  n=$((n+1))
  rm -rf "$work"
done
[[ $n -gt 0 ]] || { echo "fuzz: no targets built"; exit 1; }
exit $rc
