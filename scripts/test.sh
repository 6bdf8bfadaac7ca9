#!/usr/bin/env bash
# `make test`: source rules, release build + unit + client tests, then the
# same suites under AddressSanitizer + UndefinedBehaviorSanitizer, then the
# fuzz smoke.  Any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
jobs=$(nproc 2>/dev/null || echo 2)
step() { printf '\n==== %s ====\n' "$*"; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Totals for the closing line: test cases from cmocka and node, fuzz targets.
count() { # file kind
  case $2 in
    unit) sed -nE 's/^unit: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/p' "$1" | tail -1 ;;
    node) echo "$(sed -nE 's/^# pass ([0-9]+)/\1/p' "$1" | tail -1) $(sed -nE 's/^# fail ([0-9]+)/\1/p' "$1" | tail -1)" ;;
  esac
}
total_pass=0; total_fail=0
add() { read -r p f <<<"$(count "$1" "$2")"; total_pass=$((total_pass+${p:-0})); total_fail=$((total_fail+${f:-0})); }

step "source rules"
bash scripts/checksrc.sh

step "release build"
make -j"$jobs" --no-print-directory airlock
make -j"$jobs" --no-print-directory unit-bins

step "unit tests (release)"
bash scripts/unit.sh build/rel | tee "$logs/unit-rel"; add "$logs/unit-rel" unit

step "client tests (release)"
AIRLOCK_BIN="$PWD/build/rel/airlock" node --test --test-concurrency=1 tests/client/ | tee "$logs/node-rel"
add "$logs/node-rel" node

step "sanitizer build (address,undefined)"
make -j"$jobs" --no-print-directory SANITIZER=address,undefined airlock unit-bins
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"

step "unit tests (ASan+UBSan)"
bash scripts/unit.sh build/san | tee "$logs/unit-san"; add "$logs/unit-san" unit

step "client tests (ASan+UBSan)"
san_log=$(mktemp -d)
ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$san_log/asan" UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$san_log/ubsan" \
  AIRLOCK_BIN="$PWD/build/san/airlock" AIRLOCK_SANITIZED=1 \
  node --test --test-concurrency=1 tests/client/ | tee "$logs/node-san"
add "$logs/node-san" node
if compgen -G "$san_log/*" > /dev/null; then
  echo "sanitizer reports:"; cat "$san_log"/*; exit 1
fi
echo "sanitizers: no report"

step "fuzz smoke (${FUZZ_SECONDS:-30}s per target)"
make -j"$jobs" --no-print-directory fuzz
bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}" | tee "$logs/fuzz"
nf=$(grep -c '^fuzz: .* for ' "$logs/fuzz" || true)
total_pass=$((total_pass+nf))

step "all tests passed"
echo "tests: $total_pass passed, $total_fail failed"
