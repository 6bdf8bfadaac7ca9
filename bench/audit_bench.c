/* audit_bench.c - audited events per second into SQLite (store + chain).
 *
 * Drives the real store (src/store) with its writer thread and the audit
 * appender (src/audit/chain.c) the way the gateway does: a producer thread
 * reserves and submits realistic request events (1.5 KB of fields, an
 * attempts array, commitments), the writer groups them into transactions,
 * appends one canonical record per event to the Merkle log and signs a
 * checkpoint every 1000 records.  Rows:
 *   events only        audit off (the store alone, for comparison)
 *   batch, metadata    audit on, group commit every 10 ms
 *   batch, full        plus a sealed 2 KB payload per record (AES-256-GCM)
 *   sync, C in flight  durability: sync (synchronous=FULL, commit as soon as
 *                      events are queued); the producer keeps C events
 *                      waiting for their commit callback, like C concurrent
 *                      requests whose answers are held for the commit.
 * Run under `taskset -c 1` (bench/audit.sh) so producer and writer share one
 * core.  Each row uses a fresh database in BENCH_AUDIT_DIR (default /tmp).
 * BENCH_AUDIT_ONLY=batch runs the batch, metadata row alone (for perf). */
#include "audit/chain.h"
#include "store/store.h"
#include "util/common.h"
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_event(al_event_t *e, int i)
{
    al_event_init(e);
    e->ts_ms = al_wall_ms();
    snprintf(e->request_id, sizeof e->request_id, "req-%08d-5c1f2a9b7d3e4f60", i);
    snprintf(e->method, sizeof e->method, "POST");
    snprintf(e->path, sizeof e->path, "/v1/chat/completions");
    snprintf(e->agent, sizeof e->agent, "support-bot-%d", i % 8);
    snprintf(e->key_id, sizeof e->key_id, "key_0123456789abcdef");
    snprintf(e->model, sizeof e->model, "gpt-4o-mini");
    snprintf(e->provider, sizeof e->provider, "openai");
    snprintf(e->upstream_model, sizeof e->upstream_model, "gpt-4o-mini-2024-07-18");
    snprintf(e->outcome, sizeof e->outcome, "ok");
    e->status = 200;
    e->input_tokens = 812;
    e->output_tokens = 164;
    e->cached_tokens = 0;
    e->cost_known = true;
    e->cost_usd = 0.0002202;
    e->latency_ms = 431.2;
    e->ttft_ms = 210.7;
    e->upstream_ms = 428.9;
    e->bytes_in = 2310;
    e->bytes_out = 1544;
    e->n_attempts = 1;
    snprintf(e->attempts, sizeof e->attempts,
             "[{\"target\":\"gpt-4o-mini\",\"provider\":\"openai\",\"outcome\":\"ok\","
             "\"status\":200,\"latency_ms\":428.9}]");
    snprintf(e->session_id, sizeof e->session_id, "sess-%d", i / 10);
    snprintf(e->step, sizeof e->step, "%d", i % 10);
    snprintf(e->trace_id, sizeof e->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    e->has_received = e->has_sent = e->has_response = true;
    memset(e->sha_received, 0x11, 32);
    memset(e->sha_sent, 0x22, 32);
    memset(e->sha_response, 0x33, 32);
}

typedef struct run {
    atomic_int in_flight;
    atomic_long committed;
} run_t;

static void on_commit(void *ud, void *ticket, bool ok)
{
    run_t *r = ud;
    (void)ticket;
    (void)ok;
    atomic_fetch_sub(&r->in_flight, 1);
    atomic_fetch_add(&r->committed, 1);
}

static double one_row(const char *label, int n, bool audit, bool sync, bool full, int window,
                      const al_signer_t *signer, const al_keyring_t *kr)
{
    char dir[256], url[300], err[256];
    const char *base = getenv("BENCH_AUDIT_DIR");
    snprintf(dir, sizeof dir, "%s/al_audit_bench_XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(url, sizeof url, "sqlite://%s/bench.db", dir);
    al_store_opts_t o = {.queue_capacity = 65536, .flush_interval_ms = 10, .batch_max = 4096,
                         .audit_off = !audit, .sync_commit = sync};
    al_store_t *s;
    if (al_store_open(url, &o, &s, err, sizeof err) != AL_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    al_audit_opts_t ao = {.signer = signer, .origin = "bench.airlock", .cp_every = 1000,
                          .cp_interval_ms = 10000};
    if (full) {
        ao.keyring = kr;
        ao.kid = "k1";
    }
    run_t r;
    atomic_init(&r.in_flight, 0);
    atomic_init(&r.committed, 0);
    if (audit) al_store_set_audit(s, &ao, 0);
    al_store_set_commit_cb(s, on_commit, &r);
    al_store_start(s);
    char body[2048];
    memset(body, 'x', sizeof body);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        al_event_t e;
        make_event(&e, i);
        if (full) {
            e.payload = al_audit_payload_new(1 << 20);
            al_audit_payload_set(e.payload, 0, body, 1200);
            al_audit_payload_set(e.payload, 1, body, 1100);
            al_audit_payload_set(e.payload, 2, body, 900);
        }
        if (window > 0) {
            while (atomic_load(&r.in_flight) >= window) usleep(50);
            atomic_fetch_add(&r.in_flight, 1);
            e.ticket = &r;
        }
        while (al_store_reserve(s) != AL_OK) usleep(100);
        al_store_submit(s, &e);
    }
    while (al_store_written(s) + al_store_lost(s) < (uint64_t)n) usleep(200);
    double dt = now_s() - t0;
    al_store_close(s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    double rate = n / dt;
    printf("| %-28s | %8d | %10.0f |\n", label, n, rate);
    fflush(stdout);
    return rate;
}

int main(void)
{
    int n = getenv("BENCH_AUDIT_N") ? atoi(getenv("BENCH_AUDIT_N")) : 200000;
    al_log_level = AL_LOG_WARN;
    char sk[256], vk[256];
    al_signer_t signer;
    al_note_keygen("bench.airlock", sk, sizeof sk, vk, sizeof vk);
    al_note_signer_parse(sk, strlen(sk), &signer);
    al_keyring_t *kr;
    uint8_t mk[32];
    al_random(mk, sizeof mk);
    al_keyring_new(&kr);
    al_keyring_add(kr, "k1", mk);
    const char *only = getenv("BENCH_AUDIT_ONLY"); /* "batch": the batch, metadata row alone */
    if (only && !strcmp(only, "batch")) {
        one_row("batch, metadata", n, true, false, false, 0, &signer, NULL);
        al_keyring_free(kr);
        return 0;
    }
    printf("| mode                         |   events |  events/s  |\n");
    printf("|------------------------------|----------|------------|\n");
    one_row("events only (audit off)", n, false, false, false, 0, NULL, NULL);
    one_row("batch, metadata", n, true, false, false, 0, &signer, NULL);
    one_row("batch, full (3 x ~1 KB)", n, true, false, true, 0, &signer, kr);
    int sn = n / 4;
    one_row("sync, 64 in flight", sn, true, true, false, 64, &signer, NULL);
    one_row("sync, 256 in flight", sn, true, true, false, 256, &signer, NULL);
    one_row("sync, 1 in flight", n / 100 > 500 ? 500 : n / 100, true, true, false, 1, &signer,
            NULL);
    al_keyring_free(kr);
    return 0;
}
