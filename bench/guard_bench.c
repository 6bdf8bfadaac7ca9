/* guard_bench.c - throughput and latency of the guardrails scanner.  Builds
 * a scanner with the built-in PII and one custom entity (and a second one
 * with the injection features too when BENCH_GUARD_INJECT=1), generates
 * ~64 MB of clean English prose with ordinary numbers (years, counts,
 * prices, percentages, times, versions, dates) and ~64 MB of PII-dense text
 * (an entity every few words) in memory with a fixed-seed PRNG, and times
 * al_scanner_scan over each in 1 MB slices (what a large request body
 * costs; best of 3, a slow configuration stops after 2 s), then the p50/p99
 * of scanning a 2 KB chat-like message 20,000 times (best of 3 rounds).
 * Last, the worst case of the digit-run confirm: 1 MB of short digit groups
 * ("1 1 1 ...", "12 34 12 34 ...", "1-2-3-...") in CPU milliseconds.
 * BENCH_GUARD_ONLY=clean|dense|msg|digits runs one measurement (for perf record).
 * Prints MB/s (1 MB = 10^6 bytes) and microseconds; bench/guard.sh builds
 * and runs it. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard/engine.h"

#define TOTAL (64u << 20)
#define SLICE (1u << 20)
/* PII-dense: one entity every DENSE_EVERY words on average (about one per
 * 50 bytes at 6: far denser than real traffic, a worst case). */
#ifndef DENSE_EVERY
#define DENSE_EVERY 6
#endif

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned pick(unsigned n) { return (unsigned)(next() % n); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const words[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
    "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "system",
    "customer", "report", "quarter", "revenue", "meeting", "project", "deadline", "budget",
    "growth", "market", "analysis", "product", "release", "support", "request", "account",
    "service", "network", "performance", "team", "schedule", "review", "summary", "policy",
    "Monday", "London", "Paris", "Berlin", "Mumbai", "September", "engineering", "results",
    "we're", "don't", "however,", "because", "between", "during", "through", "important",
};

/* Ordinary numbers of prose. */
static int put_number(char *p, size_t room)
{
    switch (pick(10)) {
    case 0: return snprintf(p, room, "%u", 1990 + pick(40));
    case 1: return snprintf(p, room, "%u", pick(1000));
    case 2: return snprintf(p, room, "$%u,%03u.%02u", 1 + pick(99), pick(1000), pick(100));
    case 3: return snprintf(p, room, "%u%%", pick(100));
    case 4: return snprintf(p, room, "%u:%02u", pick(24), pick(60));
    case 5: return snprintf(p, room, "v%u.%u.%u", pick(5), pick(20), pick(100));
    case 6: return snprintf(p, room, "%u.%u", pick(100), pick(10));
    case 7: return snprintf(p, room, "2024-%02u-%02u", 1 + pick(12), 1 + pick(28));
    case 8: return snprintf(p, room, "#%u", pick(100000));
    default: return snprintf(p, room, "%u,%03u", 1 + pick(999), pick(1000));
    }
}

static void luhn_fix(char *d, size_t n)
{
    /* Sets the last digit so d[0, n) passes Luhn. */
    unsigned sum = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned v = (unsigned)(d[n - 2 - i] - '0');
        if ((i & 1) == 0) {
            v *= 2;
            if (v > 9) v -= 9;
        }
        sum += v;
    }
    d[n - 1] = (char)('0' + (10 - sum % 10) % 10);
}

static int put_pii(char *p, size_t room)
{
    char d[20];
    switch (pick(8)) {
    case 0:
        return snprintf(p, room, "user%u.name@example%u.com", pick(100000), pick(100));
    case 1:
        return snprintf(p, room, "(%u) %03u-%04u", 200 + pick(800), 200 + pick(800), pick(10000));
    case 2:
        return snprintf(p, room, "+44 20 %04u %04u", pick(10000), pick(10000));
    case 3:
        d[0] = '4';
        for (int i = 1; i < 16; i++) d[i] = (char)('0' + pick(10));
        luhn_fix(d, 16);
        return snprintf(p, room, "%.4s %.4s %.4s %.4s", d, d + 4, d + 8, d + 12);
    case 4: return snprintf(p, room, "DE89 3704 0044 0532 0130 00");
    case 5:
        return snprintf(p, room, "%03u-%02u-%04u", 1 + pick(665), 1 + pick(98), 1 + pick(9998));
    case 6:
        return snprintf(p, room, "10.%u.%u.%u", pick(256), pick(256), pick(256));
    default: return snprintf(p, room, "AKIAIOSFODNN7EXAMPL%c", 'A' + pick(26));
    }
}

/* Fills buf[0, n) with prose; every `every` words an entity (0: none). */
static void gen(char *buf, size_t n, unsigned every)
{
    size_t o = 0;
    unsigned w = 0;
    while (o + 64 < n) {
        int k;
        if (every && pick(every) == 0) k = put_pii(buf + o, n - o);
        else if (pick(12) == 0) k = put_number(buf + o, n - o);
        else k = snprintf(buf + o, n - o, "%s", words[pick(sizeof(words) / sizeof(words[0]))]);
        o += (size_t)k;
        w++;
        buf[o++] = (w % 17 == 0) ? '.' : ' ';
        if (w % 17 == 0) buf[o++] = (w % 85 == 0) ? '\n' : ' ';
    }
    memset(buf + o, ' ', n - o);
}

/* MB/s of scanning buf[0, n) in SLICE pieces with the detectors in what;
 * stops early after 2 s (slow configurations) and counts what it scanned. */
static double bench_throughput(const al_scanner_t *s, const char *buf, size_t n, unsigned what,
                               size_t *finds)
{
    static al_scan_result_t r;
    *finds = 0;
    double t0 = now_s(), dt = 0;
    size_t done = 0;
    for (size_t o = 0; o < n; o += SLICE) {
        size_t len = n - o < SLICE ? n - o : SLICE;
        if (al_scanner_scan(s, buf + o, len, what, &r) != AL_OK) {
            fprintf(stderr, "scan failed\n");
            exit(1);
        }
        *finds += r.n_finds + r.n_dropped;
        done += len;
        dt = now_s() - t0;
        if (dt > 2.0) break;
    }
    return (double)done / 1e6 / dt;
}

static void row(const al_scanner_t *s, const char *name, const char *buf, unsigned what)
{
    size_t f = 0;
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double v = bench_throughput(s, buf, TOTAL, what, &f);
        if (v > best) best = v;
    }
    printf("%-34s %8.0f MB/s  (%zu findings in the part scanned)\n", name, best, f);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void latency(const al_scanner_t *s, const char *name, const char *msg, size_t len,
                    unsigned what)
{
    enum { N = 20000 };
    static double lat[N];
    static al_scan_result_t r;
    double best50 = 1e30, best99 = 1e30;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            double a = now_s();
            al_scanner_scan(s, msg, len, what, &r);
            lat[i] = (now_s() - a) * 1e6;
        }
        qsort(lat, N, sizeof(double), cmp_d);
        if (lat[N / 2] < best50) best50 = lat[N / 2];
        if (lat[N * 99 / 100] < best99) best99 = lat[N * 99 / 100];
    }
    printf("2 KB message, %-16s p50 %7.2f us  p99 %7.2f us  (%zu findings)\n", name, best50,
           best99, r.n_finds);
}

int main(void)
{
    al_custom_entity_t custom = {"EMPLOYEE_ID", (char *)"EMP-[0-9]{6}", AL_VAL_NONE};
    al_scanner_t *s = NULL, *si = NULL;
    char err[256];
    const char *env = getenv("BENCH_GUARD_INJECT");
    bool inj = env && env[0] == '1';
    double t0 = now_s();
    if (al_scanner_build(&custom, 1, false, &s, err, sizeof(err)) != AL_OK) {
        fprintf(stderr, "build: %s\n", err);
        return 1;
    }
    printf("build (PII): %.1f ms\n", (now_s() - t0) * 1e3);
    if (inj) {
        t0 = now_s();
        if (al_scanner_build(&custom, 1, true, &si, err, sizeof(err)) != AL_OK) {
            fprintf(stderr, "build: %s\n", err);
            return 1;
        }
        printf("build (PII + injection): %.1f ms\n", (now_s() - t0) * 1e3);
    }

    char *clean = malloc(TOTAL), *dense = malloc(TOTAL);
    if (!clean || !dense) return 1;
    gen(clean, TOTAL, 0);
    gen(dense, TOTAL, DENSE_EVERY);

    size_t warm = 0;
    bench_throughput(s, clean, 8u << 20, AL_SCAN_PII, &warm);
    printf("PII-dense text: one entity every ~%d words (~50 bytes at 6)\n", DENSE_EVERY);
    /* BENCH_GUARD_ONLY=clean|dense|msg runs one measurement (for perf). */
    const char *only = getenv("BENCH_GUARD_ONLY");
    if (!only || strcmp(only, "clean") == 0) row(s, "clean prose, PII:", clean, AL_SCAN_PII);
    if (!only || strcmp(only, "dense") == 0) row(s, "PII-dense, PII:", dense, AL_SCAN_PII);
    if (si) {
        row(si, "clean prose, PII + injection:", clean, AL_SCAN_PII | AL_SCAN_INJECT);
        row(si, "PII-dense, PII + injection:", dense, AL_SCAN_PII | AL_SCAN_INJECT);
    }

    /* A 2 KB chat message: prose with a couple of entities. */
    enum { MSG = 2048 };
    char *msg = malloc(MSG);
    if (!msg) return 1;
    gen(msg, MSG, 60);
    if (!only || strcmp(only, "msg") == 0) latency(s, "PII", msg, MSG, AL_SCAN_PII);
    if (si) latency(si, "PII + injection", msg, MSG, AL_SCAN_PII | AL_SCAN_INJECT);
    free(msg);

    /* Short digit groups: every group ends a digit-run report. */
    static const char *const groups[] = {"1 ", "12 34 ", "1-2-", "0 ", "123 ", "1."};
    if (!only || strcmp(only, "digits") == 0)
        for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
            size_t gl = strlen(groups[g]);
            for (size_t i = 0; i < SLICE; i++) clean[i] = groups[g][i % gl];
            static al_scan_result_t r;
            double best = 1e30;
            for (int i = 0; i < 3; i++) {
                double a = cpu_s();
                al_scanner_scan(s, clean, SLICE, AL_SCAN_PII, &r);
                double d = cpu_s() - a;
                if (d < best) best = d;
            }
            printf("1 MB of \"%s\"... (PII)            %8.1f ms CPU\n", groups[g], best * 1e3);
        }
    free(clean);
    free(dense);
    al_scanner_free(s);
    al_scanner_free(si);
    return 0;
}
