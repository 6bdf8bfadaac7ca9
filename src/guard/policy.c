/* policy.c - guardrail policies from the `guardrails` config.
 *
 * The defaults and an agent's section are parsed in turn into one draft
 * (a detector named by the agent replaces the default's whole setting for
 * it; entities and detectors add to or replace the defaults' by name),
 * then the draft is resolved: entity names to ids, detector names to
 * classifiers, and the scanner is compiled, or reused from an earlier
 * policy of the same config with the same custom entities. */
#include "guard/policy.h"

#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const action_names[] = {"allow", "flag",     "redact",
                                           "block", "escalate", "retry"};

const char *al_gaction_name(al_gaction_t a)
{
    return (unsigned)a < AL_ARRAY_LEN(action_names) ? action_names[a] : "allow";
}

/* --- the set -------------------------------------------------------------- */

typedef struct shared_sc {
    char *key;
    al_scanner_t *sc;
} shared_sc_t;

struct al_guard_set {
    al_guard_policy_t **pol;
    size_t n_pol;
    shared_sc_t *sc;
    size_t n_sc;
};

al_guard_set_t *al_guard_set_new(void)
{
    return al_calloc(1, sizeof(al_guard_set_t));
}

static void policy_free(al_guard_policy_t *p)
{
    for (size_t i = 0; i < p->n_custom; i++) free(p->custom[i].regex);
    for (size_t i = 0; i < p->n_dets; i++) {
        free(p->det_names[i]);
        al_classifier_free(p->dets[i]);
    }
    al_schema_free(p->out.schema_doc);
    free(p);
}

void al_guard_set_free(al_guard_set_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_pol; i++) policy_free(s->pol[i]);
    free(s->pol);
    for (size_t i = 0; i < s->n_sc; i++) {
        free(s->sc[i].key);
        al_scanner_free(s->sc[i].sc);
    }
    free(s->sc);
    free(s);
}

/* --- the draft ------------------------------------------------------------ */

typedef struct ent_over {
    char name[32];
    al_gaction_t a;
} ent_over_t;

typedef struct det_ref {
    char name[64];
    al_gaction_t a;
} det_ref_t;

typedef struct ddir {
    al_gaction_t pii_all;
    bool pii_set;
    ent_over_t over[AL_GUARD_MAX_ENT];
    size_t n_over;
    bool reversible;
    al_gaction_t injection;
    double inj_threshold;
    al_gaction_t leakage;
    uint32_t leak_min;
    al_gaction_t schema;
    char *schema_json;
    det_ref_t det[AL_GUARD_MAX_DETECTORS];
    size_t n_det;
} ddir_t;

typedef struct draft {
    ddir_t in, out;
    uint32_t window;
    al_custom_entity_t custom[AL_GUARD_MAX_CUSTOM];
    size_t n_custom;
    char *det_names[AL_GUARD_MAX_DETECTORS];
    al_classifier_t *dets[AL_GUARD_MAX_DETECTORS];
    size_t n_dets;
    char *err;
    size_t errlen;
    const char *src;          /* "guardrails" or "agents.NAME.guardrails" */
} draft_t;

static int bad(draft_t *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(draft_t *d, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d->err && d->errlen)
        snprintf(d->err, d->errlen, "guardrails%s%s: %s", *path ? "." : "", path, msg);
    return AL_EINVAL;
}

static void ddir_init(ddir_t *x)
{
    memset(x, 0, sizeof *x);
    x->inj_threshold = AL_INJECT_DEFAULT_THRESHOLD;
    x->leak_min = 50;
}

static void draft_free(draft_t *d)
{
    for (size_t i = 0; i < d->n_custom; i++) free(d->custom[i].regex);
    for (size_t i = 0; i < d->n_dets; i++) {
        free(d->det_names[i]);
        al_classifier_free(d->dets[i]);
    }
    free(d->in.schema_json);
    free(d->out.schema_json);
}

static bool is_str(yajl_val v) { return v && YAJL_IS_STRING(v); }

/* An action word allowed by mask (bit per al_gaction_t). */
static int get_action(draft_t *d, const char *path, yajl_val v, unsigned mask, al_gaction_t *out)
{
    char allowed[96] = "";
    size_t n = 0;
    for (unsigned i = 0; i < AL_ARRAY_LEN(action_names); i++)
        if (mask & (1u << i))
            n += (size_t)snprintf(allowed + n, sizeof allowed - n, "%s%s", n ? ", " : "",
                                  action_names[i]);
    if (!is_str(v)) return bad(d, path, "must be an action (%s)", allowed);
    for (unsigned i = 0; i < AL_ARRAY_LEN(action_names); i++)
        if ((mask & (1u << i)) && strcmp(v->u.string, action_names[i]) == 0) {
            *out = (al_gaction_t)i;
            return AL_OK;
        }
    return bad(d, path, "unknown action '%.40s' (%s)", v->u.string, allowed);
}

#define M(a) (1u << (a))
#define M_BASE (M(AL_GA_ALLOW) | M(AL_GA_FLAG) | M(AL_GA_BLOCK) | M(AL_GA_ESCALATE))

static bool get_num(yajl_val v, double *out)
{
    if (v && YAJL_IS_NUMBER(v)) {
        *out = YAJL_GET_DOUBLE(v);
        return true;
    }
    if (is_str(v)) {
        char *end;
        double x = strtod(v->u.string, &end);
        if (end != v->u.string && *end == '\0') {
            *out = x;
            return true;
        }
    }
    return false;
}

/* A detector's setting: a bare action or {action, ...}; keys lists the
 * other allowed keys (NULL-terminated). */
static int spec_action(draft_t *d, const char *path, yajl_val v, unsigned mask,
                       const char *const *keys, al_gaction_t *out)
{
    char p[160];
    if (is_str(v)) return get_action(d, path, v, mask, out);
    if (!YAJL_IS_OBJECT(v)) return bad(d, path, "must be an action or a mapping with `action`");
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        bool ok = strcmp(k, "action") == 0;
        for (size_t j = 0; keys && keys[j] && !ok; j++) ok = strcmp(k, keys[j]) == 0;
        if (!ok) {
            char list[160] = "action";
            size_t n = 6;
            for (size_t j = 0; keys && keys[j]; j++)
                n += (size_t)snprintf(list + n, sizeof list - n, ", %s", keys[j]);
            snprintf(p, sizeof p, "%s.%.40s", path, k);
            return bad(d, p, "unknown key (%s)", list);
        }
    }
    yajl_val a = al_json_get(v, "action");
    snprintf(p, sizeof p, "%s.action", path);
    if (!a) return bad(d, p, "is required");
    return get_action(d, p, a, mask, out);
}

static bool valid_entity_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 31) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return s[0] >= 'A' && s[0] <= 'Z';
}

static int parse_pii(draft_t *d, ddir_t *x, const char *path, yajl_val v, bool input)
{
    static const char *const keys_in[] = {"mode", "entities", NULL};
    static const char *const keys_out[] = {"entities", NULL};
    unsigned mask = M_BASE | M(AL_GA_REDACT);
    char p[160];
    int rc;
    x->pii_set = true;
    x->n_over = 0;
    x->reversible = false;
    if ((rc = spec_action(d, path, v, mask, input ? keys_in : keys_out, &x->pii_all))) return rc;
    if (!YAJL_IS_OBJECT(v)) return AL_OK;
    yajl_val mode = al_json_get(v, "mode");
    if (mode) {
        snprintf(p, sizeof p, "%.100s.mode", path);
        if (is_str(mode) && strcmp(mode->u.string, "reversible") == 0) x->reversible = true;
        else if (!is_str(mode) || strcmp(mode->u.string, "mask") != 0)
            return bad(d, p, "must be mask or reversible");
        if (x->reversible && x->pii_all != AL_GA_REDACT)
            return bad(d, p, "reversible needs action redact");
    }
    yajl_val ents = al_json_get(v, "entities");
    if (ents) {
        snprintf(p, sizeof p, "%.100s.entities", path);
        if (!YAJL_IS_OBJECT(ents)) return bad(d, p, "must map entity names to actions");
        for (size_t i = 0; i < ents->u.object.len; i++) {
            const char *k = ents->u.object.keys[i];
            snprintf(p, sizeof p, "%.100s.entities.%.40s", path, k);
            if (!valid_entity_name(k)) return bad(d, p, "not an entity name");
            if (x->n_over >= AL_GUARD_MAX_ENT) return bad(d, p, "too many entities");
            ent_over_t *o = &x->over[x->n_over++];
            snprintf(o->name, sizeof o->name, "%s", k);
            if ((rc = get_action(d, p, ents->u.object.values[i], mask, &o->a))) return rc;
        }
    }
    return AL_OK;
}

static int parse_dir(draft_t *d, ddir_t *x, yajl_val v, bool input)
{
    const char *dn = input ? "input" : "output";
    char p[160];
    int rc;
    if (!YAJL_IS_OBJECT(v)) return bad(d, dn, "must be a mapping of detectors to actions");
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val s = v->u.object.values[i];
        snprintf(p, sizeof p, "%s.%.60s", dn, k);
        if (strcmp(k, "pii") == 0) {
            if ((rc = parse_pii(d, x, p, s, input))) return rc;
        } else if (input && strcmp(k, "injection") == 0) {
            static const char *const keys[] = {"threshold", NULL};
            if ((rc = spec_action(d, p, s, M_BASE, keys, &x->injection))) return rc;
            x->inj_threshold = AL_INJECT_DEFAULT_THRESHOLD;
            yajl_val t = YAJL_IS_OBJECT(s) ? al_json_get(s, "threshold") : NULL;
            if (t && (!get_num(t, &x->inj_threshold) || x->inj_threshold <= 0 ||
                      x->inj_threshold > 1)) {
                snprintf(p, sizeof p, "%s.injection.threshold", dn);
                return bad(d, p, "must be a number in (0, 1]");
            }
        } else if (!input && strcmp(k, "leakage") == 0) {
            static const char *const keys[] = {"min_chars", NULL};
            if ((rc = spec_action(d, p, s, M_BASE | M(AL_GA_REDACT), keys, &x->leakage))) return rc;
            x->leak_min = 50;
            yajl_val t = YAJL_IS_OBJECT(s) ? al_json_get(s, "min_chars") : NULL;
            double n;
            if (t && (!get_num(t, &n) || n < 16 || n > 100000 || n != (double)(uint32_t)n)) {
                snprintf(p, sizeof p, "%s.leakage.min_chars", dn);
                return bad(d, p, "must be a whole number from 16 to 100000");
            }
            if (t) x->leak_min = (uint32_t)n;
        } else if (!input && strcmp(k, "schema") == 0) {
            static const char *const keys[] = {"schema", NULL};
            unsigned mask = M(AL_GA_ALLOW) | M(AL_GA_FLAG) | M(AL_GA_RETRY) | M(AL_GA_BLOCK) |
                            M(AL_GA_ESCALATE);
            if ((rc = spec_action(d, p, s, mask, keys, &x->schema))) return rc;
            free(x->schema_json);
            x->schema_json = NULL;
            yajl_val sch = YAJL_IS_OBJECT(s) ? al_json_get(s, "schema") : NULL;
            if (sch) {
                al_buf_t b;
                al_buf_init(&b, 256 * 1024);
                al_json_put(&b, sch);
                if (b.err) {
                    al_buf_free(&b);
                    return bad(d, p, "schema is too large");
                }
                al_buf_putc(&b, '\0');
                x->schema_json = al_buf_take(&b, NULL);
            }
        } else {
            /* A named model-based detector. */
            size_t j;
            for (j = 0; j < x->n_det; j++)
                if (strcmp(x->det[j].name, k) == 0) break;
            if (j == x->n_det) {
                if (x->n_det >= AL_GUARD_MAX_DETECTORS) return bad(d, p, "too many detectors");
                x->n_det++;
            }
            if (strlen(k) >= sizeof x->det[j].name) return bad(d, p, "name too long");
            snprintf(x->det[j].name, sizeof x->det[j].name, "%s", k);
            if ((rc = spec_action(d, p, s, M_BASE, NULL, &x->det[j].a))) return rc;
        }
    }
    return AL_OK;
}

static int parse_entities(draft_t *d, yajl_val v)
{
    char p[160];
    if (!YAJL_IS_OBJECT(v)) return bad(d, "entities", "must map names to {regex, validator}");
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val e = v->u.object.values[i];
        snprintf(p, sizeof p, "entities.%.40s", k);
        if (!valid_entity_name(k))
            return bad(d, p, "entity names are upper case letters, digits and _ (<= 31)");
        if (al_pii_entity_lookup(k, strlen(k)) >= 0)
            return bad(d, p, "is a built-in entity; choose another name");
        if (!YAJL_IS_OBJECT(e)) return bad(d, p, "must be a mapping with regex");
        for (size_t j = 0; j < e->u.object.len; j++)
            if (strcmp(e->u.object.keys[j], "regex") && strcmp(e->u.object.keys[j], "validator")) {
                snprintf(p, sizeof p, "entities.%.40s.%.40s", k, e->u.object.keys[j]);
                return bad(d, p, "unknown key (regex, validator)");
            }
        yajl_val re = al_json_get(e, "regex");
        yajl_val va = al_json_get(e, "validator");
        if (!is_str(re) || !re->u.string[0] || strlen(re->u.string) > 1024) {
            snprintf(p, sizeof p, "entities.%.40s.regex", k);
            return bad(d, p, "must be a non-empty regular expression (<= 1024 chars)");
        }
        al_validator_t vd = AL_VAL_NONE;
        if (va && (!is_str(va) || !al_pii_validator_lookup(va->u.string, strlen(va->u.string), &vd))) {
            snprintf(p, sizeof p, "entities.%.40s.validator", k);
            return bad(d, p, "must be none, luhn or mod97");
        }
        size_t j;
        for (j = 0; j < d->n_custom; j++)
            if (strcmp(d->custom[j].name, k) == 0) break;
        if (j == d->n_custom) {
            if (d->n_custom >= AL_GUARD_MAX_CUSTOM) return bad(d, p, "too many custom entities");
            d->n_custom++;
        } else {
            free(d->custom[j].regex);
        }
        snprintf(d->custom[j].name, sizeof d->custom[j].name, "%s", k);
        d->custom[j].regex = al_strdup(re->u.string);
        d->custom[j].validator = vd;
    }
    return AL_OK;
}

static int parse_detectors(draft_t *d, yajl_val v)
{
    char p[160];
    if (!YAJL_IS_OBJECT(v)) return bad(d, "detectors", "must map names to detector settings");
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        snprintf(p, sizeof p, "detectors.%.40s", k);
        size_t kl = strlen(k);
        bool ok = kl > 0 && kl < 64;
        for (size_t j = 0; j < kl && ok; j++)
            ok = (k[j] >= 'a' && k[j] <= 'z') || (k[j] >= 'A' && k[j] <= 'Z') ||
                 (k[j] >= '0' && k[j] <= '9') || k[j] == '_' || k[j] == '-';
        if (!ok) return bad(d, p, "detector names are letters, digits, _ and - (< 64)");
        if (!strcmp(k, "pii") || !strcmp(k, "injection") || !strcmp(k, "leakage") ||
            !strcmp(k, "schema"))
            return bad(d, p, "is a built-in detector's name");
        al_classifier_t *cl = NULL;
        int rc = al_classifier_parse(k, v->u.object.values[i], &cl, d->err, d->errlen);
        if (rc) return rc;
        size_t j;
        for (j = 0; j < d->n_dets; j++)
            if (strcmp(d->det_names[j], k) == 0) break;
        if (j == d->n_dets) {
            if (d->n_dets >= AL_GUARD_MAX_DETECTORS) {
                al_classifier_free(cl);
                return bad(d, p, "too many detectors");
            }
            d->det_names[d->n_dets++] = al_strdup(k);
        } else {
            al_classifier_free(d->dets[j]);
        }
        d->dets[j] = cl;
    }
    return AL_OK;
}

static int parse_root(draft_t *d, const char *json)
{
    char eb[160];
    yajl_val v = NULL;
    int rc = AL_OK;
    size_t len = strlen(json);
    if (al_json_depth(json, len) > 64) return bad(d, "", "nested too deeply");
    v = yajl_tree_parse(json, eb, sizeof eb);
    if (!v) return bad(d, "", "cannot read the section");
    if (YAJL_IS_STRING(v) || YAJL_IS_FALSE(v) || YAJL_IS_NULL(v)) {
        /* "off" is handled by the caller; anything else here is a mistake. */
        rc = bad(d, "", "must be a mapping (entities, detectors, input, output, stream_window) "
                        "or off");
        goto out;
    }
    if (!YAJL_IS_OBJECT(v)) {
        rc = bad(d, "", "must be a mapping (entities, detectors, input, output, stream_window)");
        goto out;
    }
    /* Entities and detectors first: input/output name them. */
    yajl_val e = al_json_get(v, "entities");
    if (e && (rc = parse_entities(d, e))) goto out;
    e = al_json_get(v, "detectors");
    if (e && (rc = parse_detectors(d, e))) goto out;
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val s = v->u.object.values[i];
        if (!strcmp(k, "entities") || !strcmp(k, "detectors")) continue;
        if (!strcmp(k, "input")) rc = parse_dir(d, &d->in, s, true);
        else if (!strcmp(k, "output")) rc = parse_dir(d, &d->out, s, false);
        else if (!strcmp(k, "stream_window")) {
            double n;
            if (!get_num(s, &n) || n < 64 || n > 8192 || n != (double)(uint32_t)n)
                rc = bad(d, "stream_window", "must be a whole number of bytes from 64 to 8192");
            else d->window = (uint32_t)n;
        } else {
            char p[64];
            snprintf(p, sizeof p, "%.40s", k);
            rc = bad(d, p, "unknown key (entities, detectors, input, output, stream_window)");
        }
        if (rc) goto out;
    }
out:
    yajl_tree_free(v);
    return rc;
}

/* --- resolving -------------------------------------------------------------- */

static int entity_id(const draft_t *d, const char *name)
{
    int b = al_pii_entity_lookup(name, strlen(name));
    if (b >= 0) return b;
    for (size_t i = 0; i < d->n_custom; i++)
        if (strcmp(d->custom[i].name, name) == 0) return AL_ENT_CUSTOM + (int)i;
    return -1;
}

static int resolve_dir(draft_t *d, const ddir_t *x, al_guard_dir_t *o, bool input,
                       const al_guard_policy_t *p)
{
    const char *dn = input ? "input" : "output";
    char path[160];
    size_t n_ent = AL_ENT_CUSTOM + d->n_custom;
    o->pii = false;
    for (size_t i = 0; i < n_ent; i++) o->ent[i] = (uint8_t)x->pii_all;
    for (size_t i = 0; i < x->n_over; i++) {
        int id = entity_id(d, x->over[i].name);
        if (id < 0) {
            snprintf(path, sizeof path, "%s.pii.entities.%s", dn, x->over[i].name);
            return bad(d, path, "unknown entity (EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, "
                                "IP_ADDRESS, SECRET or one of `entities`)");
        }
        o->ent[id] = (uint8_t)x->over[i].a;
    }
    for (size_t i = 0; i < n_ent; i++)
        if (o->ent[i] != AL_GA_ALLOW) o->pii = true;
    o->reversible = input && x->reversible;
    o->injection = input ? x->injection : AL_GA_ALLOW;
    o->inj_threshold = x->inj_threshold;
    o->leakage = input ? AL_GA_ALLOW : x->leakage;
    o->leak_min = x->leak_min;
    o->schema = input ? AL_GA_ALLOW : x->schema;
    if (!input && x->schema_json) {
        char err[200];
        if (al_schema_compile(x->schema_json, strlen(x->schema_json), &o->schema_doc, err,
                              sizeof err) != AL_OK)
            return bad(d, "output.schema.schema", "%s", err);
    }
    o->n_det = 0;
    for (size_t i = 0; i < x->n_det; i++) {
        size_t j;
        for (j = 0; j < p->n_dets; j++)
            if (strcmp(p->det_names[j], x->det[i].name) == 0) break;
        if (j == p->n_dets) {
            snprintf(path, sizeof path, "%s.%s", dn, x->det[i].name);
            return bad(d, path, "no such detector (pii, injection%s or one of `detectors`)",
                       input ? "" : ", leakage, schema");
        }
        if (x->det[i].a == AL_GA_ALLOW) continue;
        if (!input) {
            snprintf(path, sizeof path, "output.%s", x->det[i].name);
            return bad(d, path, "model-based detectors screen the input only (output: pii, "
                                "leakage, schema)");
        }
        o->det[o->n_det].name = p->det_names[j];
        o->det[o->n_det].cl = p->dets[j];
        o->det[o->n_det].action = x->det[i].a;
        o->n_det++;
    }
    return AL_OK;
}

static char *scanner_key(const draft_t *d, bool inject)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, inject ? "I" : "-");
    for (size_t i = 0; i < d->n_custom; i++) {
        al_buf_printf(&b, "|%s|%d|", d->custom[i].name, (int)d->custom[i].validator);
        al_buf_puts(&b, d->custom[i].regex);
    }
    al_buf_putc(&b, '\0');
    return al_buf_take(&b, NULL);
}

static int get_scanner(al_guard_set_t *set, draft_t *d, bool inject, al_scanner_t **out)
{
    char *key = scanner_key(d, inject);
    for (size_t i = 0; i < set->n_sc; i++)
        if (strcmp(set->sc[i].key, key) == 0) {
            free(key);
            *out = set->sc[i].sc;
            return AL_OK;
        }
    char err[256];
    al_scanner_t *sc = NULL;
    int rc = al_scanner_build(d->custom, d->n_custom, inject, &sc, err, sizeof err);
    if (rc != AL_OK) {
        free(key);
        return bad(d, "entities", "%s", err);
    }
    set->sc = al_realloc(set->sc, (set->n_sc + 1) * sizeof *set->sc);
    set->sc[set->n_sc].key = key;
    set->sc[set->n_sc].sc = sc;
    set->n_sc++;
    *out = sc;
    return AL_OK;
}

int al_guard_policy_build(al_guard_set_t *set, const char *defaults, const char *agent,
                          const struct al_config *cfg, const al_guard_policy_t **out, char *err,
                          size_t errlen)
{
    draft_t *d = al_calloc(1, sizeof *d);
    al_guard_policy_t *p = NULL;
    int rc = AL_OK;
    *out = NULL;
    d->err = err;
    d->errlen = errlen;
    d->window = 256;
    ddir_init(&d->in);
    ddir_init(&d->out);
    if (defaults && (rc = parse_root(d, defaults))) goto out;
    if (agent && (rc = parse_root(d, agent))) goto out;

    p = al_calloc(1, sizeof *p);
    /* The draft's tables move to the policy. */
    p->n_custom = d->n_custom;
    memcpy(p->custom, d->custom, d->n_custom * sizeof d->custom[0]);
    p->n_dets = d->n_dets;
    memcpy(p->det_names, d->det_names, d->n_dets * sizeof d->det_names[0]);
    memcpy(p->dets, d->dets, d->n_dets * sizeof d->dets[0]);
    d->n_custom = d->n_dets = 0;
    /* resolve_dir reads the custom names through d: point them back. */
    draft_t names = *d;
    names.n_custom = p->n_custom;
    memcpy(names.custom, p->custom, p->n_custom * sizeof p->custom[0]);
    if ((rc = resolve_dir(&names, &d->in, &p->in, true, p)) ||
        (rc = resolve_dir(&names, &d->out, &p->out, false, p)))
        goto out;
    for (size_t i = 0; i < p->n_dets; i++)
        if ((rc = al_classifier_check(p->dets[i], cfg, err, errlen))) goto out;
    p->stream_window = d->window;
    p->any_input = p->in.pii || p->in.injection != AL_GA_ALLOW || p->in.n_det > 0;
    p->any_output = p->in.reversible || p->out.pii || p->out.leakage != AL_GA_ALLOW ||
                    p->out.schema != AL_GA_ALLOW || p->out.n_det > 0;
    if (!p->any_input && !p->any_output) {
        policy_free(p);
        p = NULL;
        goto out;
    }
    if ((rc = get_scanner(set, &names, p->in.injection != AL_GA_ALLOW, &p->sc))) goto out;
    set->pol = al_realloc(set->pol, (set->n_pol + 1) * sizeof *set->pol);
    set->pol[set->n_pol++] = p;
    *out = p;
    p = NULL;
out:
    if (p) policy_free(p);
    draft_free(d);
    free(d);
    return rc;
}
