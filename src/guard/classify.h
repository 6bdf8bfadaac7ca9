/* classify.h - model-based detectors a guardrail policy can call: `http`
 * (POST the text to a classifier service, read a JSON verdict and score)
 * and `judge` (ask one of airlock's own models or routes with a prompt
 * template and read the score from its answer).
 *
 * Both run on the worker's libcurl multi (never blocking the loop), with a
 * timeout; an error, a timeout or an unreadable answer is reported as such
 * and the policy applies the detector's on_error (allow | block). */
#ifndef AL_GUARD_CLASSIFY_H
#define AL_GUARD_CLASSIFY_H

#include "config/config.h"
#include "upstream/upstream.h"
#include "util/common.h"
#include <yajl/yajl_tree.h>

typedef struct al_classifier al_classifier_t;

typedef struct al_classifier_info {
    const char *name;        /* the detector's name in guardrails.detectors */
    bool judge;              /* type judge (else http) */
    double threshold;        /* flagged when score >= threshold */
    bool on_error_block;     /* on_error: block */
    uint32_t timeout_ms;
} al_classifier_info_t;

/* Parse one guardrails.detectors entry (already converted from YAML to a
 * JSON tree).  Keys: type (http | judge), timeout, on_error, threshold, and
 * for http: url, headers, score_path, flag_path; for judge: model (a model
 * alias or route of the config), prompt (template with {{text}}).
 * AL_EINVAL with a message naming the key. */
int al_classifier_parse(const char *name, yajl_val v, al_classifier_t **out, char *err,
                        size_t errlen);
void al_classifier_free(al_classifier_t *cl);
void al_classifier_get_info(const al_classifier_t *cl, al_classifier_info_t *out);
/* Judge: check that its model exists in cfg (at config load).  AL_EINVAL
 * with a message when not. */
int al_classifier_check(const al_classifier_t *cl, const al_config_t *cfg, char *err,
                        size_t errlen);

typedef struct al_verdict {
    int rc;                  /* AL_OK, AL_ETIMEDOUT, AL_EIO (down, non-2xx), AL_EPARSE */
    double score;            /* valid when rc == AL_OK */
    bool flagged;            /* score >= threshold, or the service's own flag */
    double ms;               /* time taken */
} al_verdict_t;

typedef void (*al_classify_done_fn)(void *ud, const al_verdict_t *v);
typedef struct al_classify_job al_classify_job_t;

/* Start classifying text on up (the worker's upstream).  cb runs exactly
 * once, later, on the loop thread, unless the job is cancelled. */
int al_classify_start(const al_classifier_t *cl, al_upstream_t *up, const al_config_t *cfg,
                      const char *text, size_t len, al_classify_done_fn cb, void *ud,
                      al_classify_job_t **out);
void al_classify_cancel(al_classify_job_t *j);

#endif
