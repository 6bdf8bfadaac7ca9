/* gateway.h - the serving process: I/O workers, the control loop, reload,
 * the key watcher and shutdown.
 *
 * N workers each run their own libuv loop with an SO_REUSEPORT listener and
 * a curl multi handle; a connection lives and dies on one worker.  The main
 * thread runs the control loop: signals, the admin listener (/metrics,
 * /healthz, /readyz) and configuration reload.  A watcher thread polls the
 * store for key changes.  New configuration snapshots and key tables are
 * handed to each worker through an atomic slot and a uv_async wake-up, so
 * workers read both without locks. */
#ifndef AL_GATEWAY_H
#define AL_GATEWAY_H

#include "config/config.h"
#include "obs/alerts.h"
#include "reliab/breaker.h"
#include "obs/metrics.h"
#include "policy/budget.h"
#include "policy/keys.h"
#include "policy/kill.h"
#include "policy/limits.h"
#include "policy/session.h"
#include "server/http.h"
#include "store/store.h"
#include "upstream/upstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

typedef struct al_gateway al_gateway_t;

/* A closed escalation's outcome, handed from the watcher to the worker that
 * holds its request. */
typedef struct al_esc_note {
    struct al_esc_note *next;
    char id[40];
    char status[12];
    char *answer;               /* malloc'd or NULL */
} al_esc_note_t;

typedef struct al_worker {
    unsigned idx;
    al_gateway_t *gw;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t drain_timer;
    al_http_server_t http;
    al_upstream_t *up;
    al_config_t *cfg;                   /* owned reference */
    al_keytab_t *keys;                  /* owned reference */
    _Atomic(al_config_t *) next_cfg;    /* handed over by the control thread */
    _Atomic(al_keytab_t *) next_keys;
    al_killtab_t *kills;                /* owned reference */
    _Atomic(al_killtab_t *) next_kills;
    struct al_ctx *active;              /* requests in flight (for kill switches) */
    uint64_t loop_alerted[32];          /* sessions recently announced as loops */
    unsigned loop_alert_pos;
    atomic_bool stop;
    bool stopping;
    bool aborting;                      /* grace over: open requests are being cut */
    uint64_t stop_deadline_ns;
    atomic_uint inflight;               /* pipeline contexts alive (read by the admin API) */
    unsigned jobs;                      /* thread-pool jobs queued by this worker */
    unsigned price_warned;              /* crude log limiter */
    struct al_ctx *held;                /* requests waiting for a person */
    pthread_mutex_t inbox_lock;
    al_esc_note_t *inbox;               /* closed escalations to deliver */
    struct al_ctx *commits;             /* durability: sync - committed records (inbox_lock) */
    bool wake_closed;                   /* (inbox_lock) the loop is gone: no more wake-ups */
    unsigned gated;                     /* answers waiting for their commit */
} al_worker_t;

struct al_gateway {
    char *config_path;
    al_config_t *cfg;                   /* control thread's current snapshot */
    pthread_mutex_t lock;               /* guards cfg and keys for readers off the main loop */
    al_store_t *store;
    al_metrics_t *metrics;
    al_worker_t *workers;
    unsigned n_workers;
    atomic_uint conn_count;
    uv_loop_t *loop;                    /* control loop */
    al_http_server_t admin;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t stop_timer;
    pthread_t watcher;
    atomic_bool watcher_stop;
    bool watcher_started;
    al_keytab_t *keys;                  /* latest table, under lock */
    atomic_bool shutting_down;
    int exit_code;
    al_breaker_registry_t *breakers;    /* outlives reloads */
    al_limiter_t *limiter;              /* rate limits, shared by workers */
    al_ledger_t *ledger;                /* budgets, shared by workers */
    al_sessions_t *sessions;            /* session limits and loops */
    al_killtab_t *kills;                /* latest kill switches, under lock */
    al_alerts_t *alerts;                /* webhook sender */
    struct al_otlp *otlp;               /* span exporter, NULL when not configured */
    struct al_keyring *keyring;         /* audit master keys, NULL unless capture: full */
    struct al_signer *signer;           /* audit checkpoint key, NULL = no checkpoints */
    struct al_witness *witness;         /* checkpoint witnesses, NULL = none */
    al_audit_cfg_t audit;               /* the audit settings the gateway started with (a
                                           reload does not change them); its strings belong
                                           to start_cfg */
    al_config_t *start_cfg;             /* a reference to the configuration of the start, held
                                           until exit: the store's appender and the witness
                                           point into it */
    pthread_mutex_t hold_lock;          /* guards the held-escalation registry */
    struct al_hold_ent *holds;          /* escalation id -> worker, for the watcher */
    size_t n_holds, cap_holds;
    int64_t esc_version;                /* last seen by the watcher */
    atomic_bool holds_dirty;            /* a hold was added: the watcher looks again */
    int64_t last_expiry_ms;
};

/* Register / forget an escalation whose request a worker holds. */
void al_gateway_hold_add(al_gateway_t *gw, const char *id, unsigned worker);
void al_gateway_hold_remove(al_gateway_t *gw, const char *id);
/* A worker delivers closed escalations to the requests it holds
 * (pipeline/escalate.c); called on the worker's loop. */
void al_pipeline_deliver_notes(al_worker_t *w);
/* durability: sync - the store's commit callback (any thread) and the
 * worker's delivery of committed records (releases the held answers). */
void al_pipeline_committed(void *ud, void *ticket, bool ok);
void al_pipeline_deliver_commits(al_worker_t *w);
/* A worker applies new kill switches to its requests in flight. */
void al_pipeline_apply_kills(al_worker_t *w);
/* The admin API under /admin/v1 (server/admin.c), on the control loop. */
void al_admin_handle(al_gateway_t *gw, al_http_req_t *req);

/* Run `airlock serve --config FILE` until SIGTERM/SIGINT; returns the exit
 * status (0 after a clean shutdown). */
int al_gateway_run(const char *config_path);

/* The data-plane handler (pipeline/pipeline.c). */
void al_pipeline_handle(al_http_req_t *req);
/* At the end of the headers: keep the body only for a request that carries
 * a known key (the lookup is in memory). */
bool al_pipeline_headers(al_http_req_t *req);
/* Events for requests the HTTP layer rejected itself. */
void al_pipeline_reject(al_http_server_t *s, int status, const char *type,
                        const char *request_id, uint64_t bytes_in, uint64_t t_start_ns);

#endif
