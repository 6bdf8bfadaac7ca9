/* config.h - the validated, immutable configuration snapshot.
 *
 * al_config_load() parses a YAML file (libfyaml), validates every key, type,
 * bound and reference, resolves provider secrets from the environment and
 * returns a reference-counted snapshot.  Nothing in a snapshot changes after
 * load; reload builds a new one and swaps it.  All errors name the file, line
 * and key ("quickstart.yaml:12: models.gpt.provider: unknown provider 'x'"). */
#ifndef AL_CONFIG_H
#define AL_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AL_NAME_MAX 64          /* agent, provider and model alias names */
#define AL_UPSTREAM_MODEL_MAX 128

typedef enum al_provider_type {
    AL_PROVIDER_OPENAI = 1,     /* any OpenAI-compatible HTTP API */
    AL_PROVIDER_SIMULATED = 2,  /* in-process, deterministic */
    AL_PROVIDER_ANTHROPIC = 3,  /* Anthropic Messages API; requests translated */
} al_provider_type_t;

typedef struct al_kv {
    char *name;
    char *value;
} al_kv_t;

typedef struct al_sim_params {
    uint32_t latency_ms;        /* before the first byte; default 0 */
    uint32_t jitter_ms;         /* uniform extra 0..jitter; default 0 */
    uint32_t output_tokens;     /* completion length in tokens; default 16 */
    uint32_t chunks;            /* streamed content chunks; default 8 */
    uint32_t chunk_interval_ms; /* between chunks; default 0 */
} al_sim_params_t;

typedef struct al_provider {
    char *name;
    al_provider_type_t type;
    char *base_url;             /* without trailing slash; NULL for simulated */
    char *api_key_env;          /* NULL if none */
    char *api_key;              /* resolved secret, NULL if none; never logged */
    al_kv_t *headers;           /* extra upstream headers */
    size_t n_headers;
    char **forward_headers;     /* client header names forwarded upstream;
                                   lower-case; a trailing '*' is a prefix match */
    size_t n_forward_headers;
    uint32_t connect_timeout_ms;    /* default 5000 */
    uint32_t first_byte_timeout_ms; /* default 60000 */
    uint32_t total_timeout_ms;      /* default 600000 */
    uint32_t idle_timeout_ms;       /* key stream_idle_timeout: longest silence
                                       between response bytes once the head
                                       arrived; default 60000, 0 = none */
    char *anthropic_version;        /* anthropic only: anthropic-version header,
                                       default "2023-06-01" */
    al_sim_params_t sim;        /* simulated only */
} al_provider_t;

typedef struct al_model {
    char *alias;
    const al_provider_t *provider;  /* borrowed from the same snapshot */
    char *upstream_model;
    bool has_price;
    double price_input;         /* USD per million input tokens */
    double price_output;        /* USD per million output tokens */
    double price_cached_input;  /* USD per million cached input tokens;
                                   defaults to price_input when absent */
    uint32_t context_window;    /* 0 = unknown */
    uint32_t max_output_tokens; /* 0 = unknown; the max_tokens sent to an
                                   anthropic provider when the client gave none
                                   (then 4096) */
} al_model_t;

/* --- routes (reliability) ------------------------------------------------ */

typedef enum al_strategy {
    AL_STRATEGY_FALLBACK = 0,   /* targets in order */
    AL_STRATEGY_WEIGHTED = 1,   /* weighted random among healthy targets */
    AL_STRATEGY_LATENCY = 2,    /* lowest EWMA latency among healthy, explores */
} al_strategy_t;

/* Failure classes (bit mask), for retry.on. */
#define AL_RETRY_429 0x01u          /* "429" */
#define AL_RETRY_5XX 0x02u          /* "5xx" */
#define AL_RETRY_TIMEOUT 0x04u      /* "timeout": connect, first byte, idle, total */
#define AL_RETRY_CONNECT 0x08u      /* "connect_error" */
#define AL_RETRY_RESET 0x10u        /* "reset": connection reset, malformed response */
#define AL_RETRY_ALL 0x1fu

typedef struct al_retry_cfg {
    uint32_t attempts;          /* tries per target, >= 1; default 2 */
    uint32_t backoff_base_ms;   /* default 100 */
    uint32_t backoff_cap_ms;    /* default 2000; sleep = rand(0, min(cap, base*2^n)) */
    unsigned on;                /* AL_RETRY_* mask; default AL_RETRY_ALL */
    uint32_t retry_after_cap_ms;/* longest Retry-After honoured; a longer one
                                   moves to the next target; default 5000 */
    uint32_t deadline_ms;       /* whole request, streaming included; 0 = none;
                                   default 0.  Header x-airlock-deadline-ms
                                   may lower it per request */
} al_retry_cfg_t;

typedef struct al_breaker_cfg {
    double failure_ratio;       /* open at failures/requests >= this; default 0.5 */
    uint32_t window_ms;         /* sliding window; default 30000 */
    uint32_t min_requests;      /* in the window before the ratio counts; default 10 */
    uint32_t consecutive_failures; /* open after this many in a row; default 5; 0 = off */
    uint32_t cooldown_ms;       /* open -> half-open; default 30000 */
    uint32_t half_open_probes;  /* probes let through at once when half-open; default 1 */
} al_breaker_cfg_t;

typedef struct al_breaker al_breaker_t;   /* runtime state, reliab/breaker.h */

typedef struct al_route_target {
    const al_model_t *model;    /* borrowed */
    uint32_t weight;            /* default 1; weighted strategy only */
    al_breaker_t *breaker;      /* bound by the gateway after load (NULL = always closed) */
} al_route_target_t;

typedef enum al_esc_mode {
    AL_ESC_DEFER = 0,           /* answer 503 `escalated` at once */
    AL_ESC_HOLD = 1,            /* keep the client waiting for a person */
} al_esc_mode_t;

typedef struct al_escalation_cfg {
    al_esc_mode_t mode;         /* default defer */
    uint32_t hold_timeout_ms;   /* hold: longest wait; default 120000 */
    uint32_t expire_ms;         /* an open escalation closes as `timeout` after
                                   this; default 86400000 (24 h) */
} al_escalation_cfg_t;

typedef struct al_route {
    char *name;                 /* shares the namespace of model aliases */
    al_route_target_t *targets;
    size_t n_targets;           /* >= 1, at most 16 */
    al_strategy_t strategy;     /* default fallback */
    double exploration;         /* latency strategy: share of requests sent to a
                                   random healthy target; default 0.05 */
    al_retry_cfg_t retry;
    al_breaker_cfg_t breaker;
    bool has_degraded;
    al_route_target_t degraded; /* used only while every target's breaker is open */
    bool final_escalate;        /* `final: escalate` (default `final: error`) */
    bool has_escalation;        /* route-level `escalation:` overrides the top level */
    al_escalation_cfg_t escalation;
} al_route_t;

typedef struct al_alerts_cfg {
    char *webhook_url;          /* NULL = none; http(s) */
    uint32_t timeout_ms;        /* per POST; default 5000 */
    uint32_t queue;             /* pending alerts kept; default 1024 */
} al_alerts_cfg_t;

/* `audit:` (notes/audit.md). */
typedef struct al_audit_master_key {
    char *id;                   /* key id, [A-Za-z0-9._-]{1,63} */
    char *file;                 /* one of file / env */
    char *env;
} al_audit_master_key_t;

typedef struct al_audit_cfg {
    bool enabled;               /* default true */
    bool sync;                  /* durability: sync (default batch) */
    uint32_t flush_ms;          /* batch commit interval, 1..10, default 10 */
    bool capture_full;          /* capture: full (default metadata) */
    uint32_t max_payload_bytes; /* per part; default 1 MiB */
    char *origin;               /* checkpoint origin; default "airlock" */
    char *signing_key;          /* signer key file; NULL = no checkpoints */
    char *verify_key;           /* verifier key text; NULL = none */
    uint32_t checkpoint_every;  /* records; default 1000 */
    uint32_t checkpoint_interval_ms; /* default 10000 */
    al_audit_master_key_t *master_keys;
    size_t n_master_keys;
    char *master_key_id;        /* default: the last listed */
    uint32_t retention_days;    /* 0 = keep */
    char *witness_file;         /* NULL = none */
    char *witness_url;          /* NULL = none */
    char **witness_headers;     /* "Name: value" lines */
    size_t n_witness_headers;
} al_audit_cfg_t;

/* `telemetry:` */
typedef struct al_telemetry_cfg {
    char *service_name;         /* default "airlock" */
    bool capture_content;       /* gen_ai.input/output.messages on spans */
    char *otlp_endpoint;        /* NULL = no export */
    char **otlp_headers;        /* "Name: value" lines */
    size_t n_otlp_headers;
    uint32_t otlp_timeout_ms, otlp_batch_max, otlp_flush_ms, otlp_queue_max;
    uint32_t otlp_max_retries, otlp_backoff_ms;
} al_telemetry_cfg_t;

/* --- policy (issue 4) ---------------------------------------------------- */

typedef struct al_limits_cfg {
    uint32_t rpm;               /* requests per minute; 0 = no limit */
    uint32_t tpm;               /* tokens per minute (estimated at admission,
                                   corrected when usage is known); 0 = no limit */
    uint32_t concurrent;        /* requests in flight; 0 = no limit */
} al_limits_cfg_t;

typedef struct al_budget_cfg {
    double daily_usd;           /* < 0 = no daily budget (YAML key daily_usd) */
    double monthly_usd;         /* < 0 = no monthly budget (monthly_usd) */
} al_budget_cfg_t;

typedef struct al_session_cfg {
    uint32_t max_requests;      /* per session; 0 = no cap */
    uint64_t max_tokens;        /* input + output; 0 = no cap */
    double max_cost_usd;        /* < 0 = no cap */
    uint32_t max_duration_ms;   /* from the session's first request; 0 = no cap */
    uint32_t loop_threshold;    /* the same body more than this many times in a
                                   session is a loop; 0 = off; default 5 */
} al_session_cfg_t;

typedef struct al_sla_cfg {
    uint32_t p95_latency_ms;    /* 0 = not set */
    double availability_pct;    /* < 0 = not set; 0..100 */
    double max_error_rate;      /* < 0 = not set; 0..1 */
} al_sla_cfg_t;

typedef enum al_environment {
    AL_ENV_UNSET = 0,
    AL_ENV_DEV = 1,
    AL_ENV_STAGING = 2,
    AL_ENV_PROD = 3,
} al_environment_t;

typedef struct al_team {
    char *name;
    char *owner;                /* may be NULL */
    al_budget_cfg_t budget;     /* team-wide, over all its agents */
} al_team_t;

typedef struct al_agent {
    char *name;
    char *owner;                /* required */
    char *description;          /* may be NULL */
    /* inventory (all optional) */
    char *team;                 /* NULL = none; must name a `teams` entry when
                                   that section exists, else any name */
    const al_team_t *team_cfg;  /* resolved, NULL when no teams section entry */
    char *oncall;
    al_sla_cfg_t sla;
    int64_t review_last_ms;     /* review.last (YYYY-MM-DD, UTC midnight); 0 = never */
    uint32_t review_every_days; /* review.every_days; 0 = not set */
    al_environment_t environment;
    char *data_classification;  /* free text, e.g. public|internal|confidential|restricted */
    /* policy */
    al_limits_cfg_t limits;     /* the agent as a whole */
    al_limits_cfg_t key_limits; /* each key of the agent */
    al_budget_cfg_t budget;
    al_session_cfg_t session;
    const al_model_t **models;  /* allow-list, borrowed */
    size_t n_models;
    const al_route_t **routes;  /* routes named in the same `models` list */
    size_t n_routes;
    /* guardrails: the top-level defaults merged with the agent's own
       section; NULL = none apply (nothing configured, or `guardrails: off`) */
    const struct al_guard_policy *guard;
    char *guard_json;           /* the agent's own section as JSON, NULL if none */
    bool guard_off;
    int guard_line;
} al_agent_t;

typedef struct al_server_cfg {
    char *listen_host;          /* default 127.0.0.1 */
    uint16_t listen_port;       /* default 8080 */
    char *admin_host;           /* default 127.0.0.1 */
    uint16_t admin_port;        /* default 8081; 0 disables admin listener */
    unsigned workers;           /* 0 in YAML = number of cores; resolved here */
    size_t max_header_bytes;    /* default 16384 */
    size_t max_body_bytes;      /* default 8 MiB */
    size_t max_response_bytes;  /* upstream non-streamed body cap, default 64 MiB */
    uint32_t header_timeout_ms; /* whole header must arrive; default 10000 */
    uint32_t body_timeout_ms;   /* whole body must arrive; default 30000 */
    uint32_t idle_timeout_ms;   /* keep-alive idle; default 60000 */
    unsigned max_connections;   /* per process; default 10000 */
    uint32_t shutdown_grace_ms; /* default 10000 */
} al_server_cfg_t;

typedef struct al_store_cfg {
    char *url;                  /* as written, e.g. "sqlite://airlock.db" */
    char *sqlite_path;          /* resolved path (relative to the cwd) */
    uint32_t queue_capacity;    /* events; default 65536 */
    uint32_t flush_interval_ms; /* group commit; default 10 */
    uint32_t batch_max;         /* events per transaction; default 4096 */
} al_store_cfg_t;

typedef struct al_config {
    atomic_int refs;
    char *path;                 /* file it came from */
    char hash[65];              /* SHA-256 hex of the file bytes */
    al_server_cfg_t server;
    al_store_cfg_t store;
    int log_level;              /* AL_LOG_*; key log.level, default info */
    al_provider_t *providers;
    size_t n_providers;
    al_model_t *models;
    size_t n_models;
    al_agent_t *agents;
    size_t n_agents;
    al_route_t *routes;
    size_t n_routes;
    al_escalation_cfg_t escalation;   /* top-level `escalation:` */
    al_alerts_cfg_t alerts;           /* top-level `alerts:` */
    al_team_t *teams;
    size_t n_teams;
    /* scoped tokens (`tokens:`) */
    char *token_key_env;              /* tokens.signing_key_env; NULL = a random key
                                         per process start (tokens die with it) */
    uint8_t token_key[64];            /* resolved: SHA-256 of the variable's value,
                                         or random; never logged */
    size_t token_key_len;             /* 32 */
    uint32_t token_max_ttl_ms;        /* tokens.max_ttl; default 1h */
    double max_price_input;           /* highest input price of any priced model
                                         (USD per million), for unknown prices */
    double max_price_output;
    /* guardrails (`guardrails:`): every agent's policy lives in guard_set */
    char *guard_json;                 /* the top-level section as JSON, NULL if none */
    struct al_guard_set *guard_set;
    al_audit_cfg_t audit;             /* `audit:` */
    al_telemetry_cfg_t telemetry;     /* `telemetry:` */
} al_config_t;

/* Environment lookup used for api_key_env; NULL means getenv(). */
typedef const char *(*al_getenv_fn)(const char *name);

/* Load and validate FILE.  On success *out holds a snapshot with one
 * reference and 0 is returned.  On failure returns AL_EINVAL (or AL_EIO if
 * the file cannot be read), *out is NULL and err holds one line naming the
 * file, line and key. */
int al_config_load(const char *path, al_config_t **out /* OUT */,
                   char *err, size_t errlen);

/* Same from a buffer; `name` is used in messages and as path. */
int al_config_load_buf(const char *name, const char *buf, size_t len,
                       al_getenv_fn env, al_config_t **out /* OUT */,
                       char *err, size_t errlen);

al_config_t *al_config_ref(al_config_t *c);    /* returns c */
void al_config_unref(al_config_t *c);          /* frees at zero; NULL ok */

/* Lookups by name; NULL if absent. */
const al_model_t *al_config_model(const al_config_t *c, const char *name, size_t len);
const al_agent_t *al_config_agent(const al_config_t *c, const char *name, size_t len);
const al_provider_t *al_config_provider(const al_config_t *c, const char *name, size_t len);
bool al_agent_allows(const al_agent_t *a, const al_model_t *m);
const al_route_t *al_config_route(const al_config_t *c, const char *name, size_t len);
const al_team_t *al_config_team(const al_config_t *c, const char *name, size_t len);
bool al_agent_allows_route(const al_agent_t *a, const al_route_t *r);
/* The escalation settings that apply to a route (its own, else the top level). */
const al_escalation_cfg_t *al_route_escalation(const al_config_t *c, const al_route_t *r);

#endif
