/* alerts.h - the webhook sender (alerts.webhook_url).
 *
 * Any thread calls al_alerts_post() with a title and a few fields; it never
 * blocks: the alert is copied into a bounded queue (alerts.queue, oldest
 * kept, newest refused and counted when full) and a dedicated thread POSTs
 * it with libcurl as Slack-compatible JSON:
 *   {"text": "<title>", "attachments": [{"color": C, "fields": [
 *       {"title": NAME, "value": VALUE, "short": true}, ...]}],
 *    "airlock": {"kind": KIND, "<name>": "<value>", ...}}
 * so a Slack incoming webhook shows it as is and other receivers read the
 * "airlock" object.  Failures (connect errors, timeouts, 429, 5xx) are
 * retried up to 5 times with exponential backoff (250 ms doubling, cap 8 s);
 * a 4xx other than 429 is dropped at once.  Sent, failed and dropped counts
 * are kept for metrics.  Values are never logged. */
#ifndef AL_ALERTS_H
#define AL_ALERTS_H

#include "config/config.h"
#include <stdint.h>

typedef struct al_alerts al_alerts_t;

#define AL_ALERT_MAX_FIELDS 12

typedef struct al_alert_field {
    const char *name;
    const char *value;
} al_alert_field_t;

/* Start the sender thread for cfg (copied).  webhook_url NULL: returns an
 * object whose post() only counts.  NULL on allocation/thread failure. */
al_alerts_t *al_alerts_start(const al_alerts_cfg_t *cfg);
/* Replace the target after a reload (url may be NULL).  Thread-safe. */
void al_alerts_configure(al_alerts_t *a, const al_alerts_cfg_t *cfg);
/* Queue an alert.  kind is a short machine name ("escalation.opened").
 * color: "danger" | "warning" | "good" or NULL.  0, or AL_EFULL (counted). */
int al_alerts_post(al_alerts_t *a, const char *kind, const char *title, const char *color,
                   const al_alert_field_t *fields, size_t n_fields);
/* Send what is queued (waiting at most wait_ms), stop the thread, free. NULL ok. */
void al_alerts_stop(al_alerts_t *a, uint32_t wait_ms);

typedef struct al_alerts_stats {
    uint64_t queued, sent, failed, dropped;
} al_alerts_stats_t;
void al_alerts_stats(al_alerts_t *a, al_alerts_stats_t *out /* OUT */);

#endif
