/* metrics.h - Prometheus metrics with per-worker shards.
 *
 * Each worker thread writes only its own shard (relaxed atomic loads and
 * stores, no read-modify-write contention, no lock on the hot path); a scrape
 * sums the shards.  Labelled series are found in a per-shard hash table; a
 * new series is inserted under the shard's mutex, which only the scraper
 * also takes.  Series per shard are capped; past the cap labels fold into
 * "other" so a hostile client cannot grow memory through label values. */
#ifndef AL_METRICS_H
#define AL_METRICS_H

#include "store/event.h"
#include "util/common.h"
#include <stdint.h>

typedef struct al_metrics al_metrics_t;

/* Labelled series per shard per family table before label values fold
 * into "other". */
#define AL_METRICS_SERIES_CAP 4096
/* Label values longer than this are truncated before lookup. */
#define AL_METRICS_LABEL_MAX 128

/* Unlabelled counters. */
typedef enum al_counter {
    AL_C_CONNECTIONS_TOTAL,      /* accepted connections */
    AL_C_CONNECTIONS_REJECTED,   /* over max_connections */
    AL_C_HTTP_PARSE_ERRORS,      /* 400 from the HTTP parser */
    AL_C_TIMEOUTS,               /* 408 header/body timeouts and idle closes */
    AL_C_EVENTS_REFUSED,         /* 503 because the event queue was full */
    AL_C_PRICE_UNKNOWN,          /* requests whose cost could not be priced */
    AL_C_CONFIG_RELOADS,         /* successful reloads */
    AL_C_CONFIG_RELOAD_FAILURES, /* refused reloads */
    AL_C_UPSTREAM_ERRORS,        /* failed upstream transfers */
    AL_C_UPSTREAM_ATTEMPTS,      /* upstream attempts started */
    AL_C_RETRIES,                /* attempts repeated on the same target */
    AL_C_FALLBACKS,              /* moves to another route target */
    AL_C_CONTEXT_SKIPS,          /* targets skipped: context window too small */
    AL_C_BREAKER_SKIPS,          /* targets skipped: breaker open */
    AL_C_DEGRADED,               /* requests served by a degraded target */
    AL_C_ESCALATIONS,            /* escalations opened */
    AL_C_DEADLINES,              /* requests ended by their deadline */
    AL_C_RATE_LIMITED,           /* 429 rate_limit_exceeded */
    AL_C_BUDGET_REFUSED,         /* 429 insufficient_quota */
    AL_C_SESSION_REFUSED,        /* 429 loop_detected / session_limit_exceeded */
    AL_C_KILLED,                 /* requests refused or cut by a kill switch */
    AL_C_BUDGET_ALERTS,          /* budget thresholds crossed (50/80/100 %) */
    AL_C__COUNT
} al_counter_t;

/* Scrape-time gauge callback. */
typedef double (*al_gauge_fn)(void *ud);

/* n_shards: one per worker thread plus any other thread that records. */
al_metrics_t *al_metrics_new(unsigned n_shards);
void al_metrics_free(al_metrics_t *m);

/* Record a finished request from its event: requests_total{agent,model,
 * provider,status}, tokens_total{agent,model,type}, cost_usd_total{agent,model},
 * request/ttft/upstream latency histograms{agent,model}.  Only shard's owner
 * thread may call this for that shard.
 *
 * A request event (kind "" or "request") with a provider on a chat
 * (/v1/chat/completions, /v1/messages) or embeddings (/v1/embeddings) path
 * also feeds the OpenTelemetry GenAI histograms, labelled
 * gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model (model),
 * gen_ai_response_model (upstream_model):
 *   gen_ai_client_token_usage{...,gen_ai_token_type}   input/output tokens
 *                                                       when known (input
 *                                                       only for embeddings);
 *   gen_ai_client_operation_duration_seconds{...,error_type}  upstream_ms
 *                                                       when >= 0;
 *   gen_ai_server_request_duration_seconds{...,error_type}    latency_ms;
 *   gen_ai_server_time_to_first_token_seconds{...}     ttft_ms of a
 *                                                       successful stream.
 * error_type is the event's error_type, else the status of a failure
 * without one; empty labels are left out. */
void al_metrics_observe(al_metrics_t *m, unsigned shard, const al_event_t *e);

void al_metrics_inc(al_metrics_t *m, unsigned shard, al_counter_t c, uint64_t v);
/* Guardrail verdicts: airlock_guardrail_verdicts_total{direction,detector,
 * action} and airlock_guardrail_entities_total{direction,entity}.  dir 0 =
 * input, 1 = output; det one of al_mg_det_t; action an al_gaction_t (0..5);
 * ent a built-in entity (0..6) or 7 for any custom one. */
typedef enum { AL_MG_PII, AL_MG_INJECTION, AL_MG_LEAKAGE, AL_MG_SCHEMA, AL_MG_CLASSIFIER,
               AL_MG__N } al_mg_det_t;
#define AL_MG_ACTIONS 6
#define AL_MG_ENTITIES 8
void al_metrics_guard(al_metrics_t *m, unsigned shard, unsigned dir, al_mg_det_t det,
                      unsigned action, uint64_t n);
void al_metrics_guard_entity(al_metrics_t *m, unsigned shard, unsigned dir, unsigned ent,
                             uint64_t n);
/* Gauges kept as per-shard up/down counts. */
void al_metrics_inflight(al_metrics_t *m, unsigned shard, int delta);
void al_metrics_open_conns(al_metrics_t *m, unsigned shard, int delta);

/* Register a gauge computed at scrape (name without the airlock_ prefix). */
void al_metrics_gauge_fn(al_metrics_t *m, const char *name, const char *help,
                         al_gauge_fn fn, void *ud);

/* Render Prometheus text exposition format 0.0.4 into out. Thread-safe. */
int al_metrics_render(al_metrics_t *m, al_buf_t *out);

/* Read back a counter (summed) and requests_total for tests. */
uint64_t al_metrics_counter(al_metrics_t *m, al_counter_t c);
/* requests_total summed over shards for one exact label tuple (raw values,
 * as observed; "other" for folded series).  Thread-safe. */
uint64_t al_metrics_requests(al_metrics_t *m, const char *agent, const char *model,
                             const char *provider, int status);

#endif
