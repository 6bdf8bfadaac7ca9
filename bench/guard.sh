#!/usr/bin/env bash
# guard.sh - build and run the guardrails scanner benchmark (bench/guard_bench.c)
# against the release objects: `make` first, then link the bench with every
# library object except main.o.  Pins itself to one core when taskset exists
# (BENCH_GUARD_CPU, default 1) so the figures are per core.  Measures the PII
# scanner alone (built without the injection features); BENCH_GUARD_INJECT=1
# adds the PII + injection rows, BENCH_GUARD_ONLY=clean|dense|msg|digits runs one
# measurement (for perf record).  The machine is shared: run it a few times
# and take the best.
set -euo pipefail
cd "$(dirname "$0")/.."

make
PKGS="libuv libcurl yajl libfyaml libcrypto sqlite3 libhs"
OBJS=$(ls build/rel/src/*/*.o | grep -v '/main\.o$')
# shellcheck disable=SC2046,SC2086
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Isrc $(pkg-config --cflags $PKGS) \
    bench/guard_bench.c $OBJS $(pkg-config --libs $PKGS) -lhttp_parser -lpthread -lm \
    -o build/guard_bench

CPU=${BENCH_GUARD_CPU:-1}
if command -v taskset >/dev/null 2>&1; then
    exec taskset -c "$CPU" build/guard_bench
fi
exec build/guard_bench
