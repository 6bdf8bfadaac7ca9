#!/usr/bin/env bash
# `make test`: source rules, release build + unit + client tests, then the
# same suites under AddressSanitizer + UndefinedBehaviorSanitizer, then the
# fuzz smoke.  Any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
jobs=$(nproc 2>/dev/null || echo 2)
step() { printf '\n==== %s ====\n' "$*"; }

step "source rules"
bash scripts/checksrc.sh

step "release build"
make -j"$jobs" --no-print-directory airlock
make -j"$jobs" --no-print-directory unit-bins

step "unit tests (release)"
bash scripts/unit.sh build/rel

step "client tests (release)"
AIRLOCK_BIN="$PWD/build/rel/airlock" node --test --test-concurrency=1 tests/client/

step "sanitizer build (address,undefined)"
make -j"$jobs" --no-print-directory SANITIZER=address,undefined airlock unit-bins
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"

step "unit tests (ASan+UBSan)"
bash scripts/unit.sh build/san

step "client tests (ASan+UBSan)"
san_log=$(mktemp -d)
ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$san_log/asan" UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$san_log/ubsan" \
  AIRLOCK_BIN="$PWD/build/san/airlock" AIRLOCK_SANITIZED=1 \
  node --test --test-concurrency=1 tests/client/
if compgen -G "$san_log/*" > /dev/null; then
  echo "sanitizer reports:"; cat "$san_log"/*; exit 1
fi
echo "sanitizers: no report"

step "fuzz smoke (${FUZZ_SECONDS:-30}s per target)"
make -j"$jobs" --no-print-directory fuzz
bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"

step "all tests passed"
