#!/usr/bin/env bash
# Runs every cmocka unit test binary in BUILD/tests; fails if any fails.
# Prints "unit: N passed, M failed" counting test cases.
set -uo pipefail
build=${1:-build/rel}
cd "$(dirname "$0")/.."
pass=0; fail=0; bins=0; failed=()
out=$(mktemp)
for t in "$build"/tests/test_*; do
  [[ -x $t ]] || continue
  bins=$((bins+1))
  "$t" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' "$out" | tail -1)
  f=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*/\1/p' "$out" | tail -1)
  pass=$((pass+${p:-0})); fail=$((fail+${f:-0}))
  if [[ $rc -ne 0 ]]; then
    failed+=("$(basename "$t")")
    [[ -z $f ]] && fail=$((fail+1))   # crashed before reporting
  fi
done
rm -f "$out"
echo "unit: $pass passed, $fail failed ($bins binaries${failed:+; failing: ${failed[*]}})"
[[ ${#failed[@]} -eq 0 && $pass -gt 0 ]]
