/* policy.h - a compiled guardrail policy: what each detector does on the
 * way in and on the way out, built from the `guardrails` config (defaults
 * at the top level, merged with an agent's own one detector at a time).
 *
 * The YAML sections reach here as JSON text (config.c converts them), are
 * checked key by key with messages naming the key, and compile into one
 * scanner (shared between policies with the same custom entities), the
 * model-based detectors and the output schema.  A policy is immutable and
 * lives as long as its config. */
#ifndef AL_GUARD_POLICY_H
#define AL_GUARD_POLICY_H

#include "guard/classify.h"
#include "guard/engine.h"
#include "guard/schema.h"

typedef enum al_gaction {
    AL_GA_ALLOW = 0,
    AL_GA_FLAG,
    AL_GA_REDACT,
    AL_GA_BLOCK,
    AL_GA_ESCALATE,
    AL_GA_RETRY,
} al_gaction_t;

const char *al_gaction_name(al_gaction_t a);

#define AL_GUARD_MAX_CUSTOM 64
#define AL_GUARD_MAX_DETECTORS 16
#define AL_GUARD_MAX_ENT (AL_ENT_CUSTOM + AL_GUARD_MAX_CUSTOM)

typedef struct al_guard_det {
    const char *name;             /* borrowed from the policy's table */
    const al_classifier_t *cl;
    al_gaction_t action;          /* flag | block | escalate */
} al_guard_det_t;

typedef struct al_guard_dir {
    bool pii;                     /* some entity acts */
    uint8_t ent[AL_GUARD_MAX_ENT];  /* al_gaction_t per entity */
    bool reversible;              /* input: restore placeholders in the answer */
    al_gaction_t injection;       /* input */
    double inj_threshold;
    al_gaction_t leakage;         /* output */
    uint32_t leak_min;
    al_gaction_t schema;          /* output: retry | block | escalate | flag */
    al_schema_t *schema_doc;      /* output: the agent's schema, NULL = only the request's */
    al_guard_det_t det[AL_GUARD_MAX_DETECTORS];
    size_t n_det;
} al_guard_dir_t;

typedef struct al_guard_policy {
    al_scanner_t *sc;             /* shared; owned by the set */
    al_guard_dir_t in, out;
    uint32_t stream_window;
    al_custom_entity_t custom[AL_GUARD_MAX_CUSTOM];
    size_t n_custom;
    char *det_names[AL_GUARD_MAX_DETECTORS];
    al_classifier_t *dets[AL_GUARD_MAX_DETECTORS];
    size_t n_dets;
    bool any_input, any_output;
} al_guard_policy_t;

/* All policies of one config and their scanners. */
typedef struct al_guard_set al_guard_set_t;
al_guard_set_t *al_guard_set_new(void);
void al_guard_set_free(al_guard_set_t *s);

/* Build a policy from the defaults (JSON text or NULL) with an agent's own
 * section merged over it (JSON text or NULL).  Returns NULL in *out when
 * the result does nothing.  err gets "guardrails.input.pii.action: ..." on
 * AL_EINVAL.  cfg is used to check judge models. */
int al_guard_policy_build(al_guard_set_t *set, const char *defaults, const char *agent,
                          const struct al_config *cfg, const al_guard_policy_t **out, char *err,
                          size_t errlen);

#endif
