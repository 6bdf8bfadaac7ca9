#!/usr/bin/env bash
# audit.sh - build and run the audit throughput benchmark (bench/audit_bench.c)
# against the release objects: audited events per second into SQLite with the
# Merkle chain and signed checkpoints, in batch and sync durability, pinned
# to one core (BENCH_AUDIT_CPU, default 1) so producer and writer share it.
# BENCH_AUDIT_N sets the events per row (default 200000); BENCH_AUDIT_DIR the
# directory of the scratch databases (default /tmp).  The machine is shared:
# run it a few times and take the best.
set -euo pipefail
cd "$(dirname "$0")/.."

make
PKGS="libuv libcurl yajl libfyaml libcrypto sqlite3 libhs"
OBJS=$(ls build/rel/src/*/*.o | grep -v '/main\.o$')
# shellcheck disable=SC2046,SC2086
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Isrc $(pkg-config --cflags $PKGS) \
    bench/audit_bench.c $OBJS $(pkg-config --libs $PKGS) -lhttp_parser -lpthread -lm \
    -o build/audit_bench

CPU=${BENCH_AUDIT_CPU:-1}
if command -v taskset >/dev/null 2>&1; then
    exec taskset -c "$CPU" build/audit_bench
fi
exec build/audit_bench
