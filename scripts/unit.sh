#!/usr/bin/env bash
# Runs every cmocka unit test binary in BUILD/tests; fails if any fails.
set -uo pipefail
build=${1:-build/rel}
cd "$(dirname "$0")/.."
pass=0; fail=0; failed=()
for t in "$build"/tests/test_*; do
  [[ -x $t ]] || continue
  if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$(basename "$t")"); fi
done
echo "unit: $pass passed, $fail failed${failed:+ (${failed[*]})}"
[[ $fail -eq 0 && $pass -gt 0 ]]
