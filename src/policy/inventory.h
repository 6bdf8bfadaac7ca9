/* inventory.h - the agent inventory with live figures, one builder for the
 * CLI (`airlock agents list|show|permissions`) and the admin API
 * (/admin/v1/agents...).  Blocking: it queries the store (never call it on a
 * loop thread).
 *
 * An agent's JSON: {"name","owner","description","team","oncall",
 * "environment","data_classification","models":[...],"routes":[...],
 * "sla":{"p95_latency_ms","availability_pct","max_error_rate"},
 * "review":{"last","every_days","due","overdue"},
 * "limits":{...},"key_limits":{...},"budget":{"daily_usd","monthly_usd"},
 * "session":{...},
 * "live":{"requests_24h","errors_24h","error_rate_24h","availability_pct_24h",
 *         "p95_latency_ms_24h","p95_ok","spend_today_usd","spend_month_usd",
 *         "budget_today_pct","budget_month_pct"},
 * "keys":[{"id","label","created","expires","revoked","last_used"}],
 * "killed":{"scope","reason","drain"}|null}
 * (times ISO-8601 UTC or null; unset values null). */
#ifndef AL_INVENTORY_H
#define AL_INVENTORY_H

#include "config/config.h"
#include "store/store.h"
#include "util/common.h"

/* One agent's JSON, appended to out.  0, AL_ENOTFOUND (no such agent in c),
 * or a store error. */
int al_inventory_agent_json(const al_config_t *c, al_store_t *s, const char *agent,
                            int64_t now_wall_ms, al_buf_t *out);
/* {"object":"list","data":[agent...]} for every agent (only `only` when
 * not NULL: an owner's view). */
int al_inventory_list_json(const al_config_t *c, al_store_t *s, const char *only,
                           int64_t now_wall_ms, al_buf_t *out);
/* Permissions against use: {"agent","window_days":30,"allowed":[{"name",
 * "kind":"model"|"route","requests_30d","unused"}],"used_not_allowed":[{"name",
 * "requests_30d"}],"unused":N}.  0, AL_ENOTFOUND, or a store error. */
int al_inventory_permissions_json(const al_config_t *c, al_store_t *s, const char *agent,
                                  int64_t now_wall_ms, al_buf_t *out);

#endif
