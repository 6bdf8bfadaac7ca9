/* cli_guard.c - `airlock guard scan` and `airlock guard eval`: the
 * guardrails' scanner from the command line.
 *
 * scan reads stdin one line at a time (a JSON object {"text": ...} or raw
 * text) and prints one JSON line per input line: the validated PII findings
 * (byte offsets in the decoded text) and the injection score with the
 * families that fired.  Without --config the scanner has the built-in
 * entities only; with --config it also has the custom entities of the
 * defaults' policy, or of --agent's policy.  Injection features are always
 * on, whatever the policy's injection action, so the score can be seen.
 *
 * eval reads labelled JSONL ({"text", "label"}), splits each file by the
 * FNV-1a 64-bit hash of the text's bytes (tune = even hash, test = odd),
 * scans the chosen part with the injection detector and prints, per file,
 * the confusion counts, precision, recall, F1 and how often each family
 * fired on label-1 and label-0 rows; --json prints one JSON object for the
 * whole run, --errors lists the misclassified rows. */
#include "cli/cli.h"
#include "guard/engine.h"
#include "guard/policy.h"
#include "util/common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* Declared in cli/cli.h as well (main.c's dispatch). */
int al_cli_guard(int argc, char **argv);

#define LINE_MAX_BYTES (16u << 20)   /* one input line; longer ones are refused */

static void usage_guard(FILE *f)
{
    fputs("usage: airlock guard scan [--config FILE] [--agent NAME]\n"
          "       airlock guard eval FILE.jsonl... [--threshold X] [--part tune|test|all]\n"
          "                          [--json] [--errors]\n"
          "\n"
          "scan: each stdin line (a JSON object {\"text\": ...} or raw text) gives one JSON\n"
          "line: {\"findings\":[{\"entity\":\"EMAIL\",\"start\":3,\"end\":20}],\n"
          "\"injection\":{\"score\":0.0,\"features\":[]}} (byte offsets in the decoded text).\n"
          "Without --config only built-in entities are found; with it, the custom entities\n"
          "of the defaults (or of --agent's guardrails) too.\n"
          "\n"
          "eval: precision, recall and F1 of the injection detector on labelled JSONL\n"
          "({\"text\": ..., \"label\": 0|1}) at --threshold (default 0.5).  Rows are split by\n"
          "the FNV-1a 64-bit hash of the text: tune = even, test = odd (default all).\n"
          "--json prints one JSON object; --errors lists misclassified rows.\n",
          f);
}

/* FNV-1a, 64 bits. */
static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Reads one line into *line (NUL-terminated, newline and CR stripped).
 * Returns 1 with *len set, 0 at the end, -1 on a read error, -2 when the
 * line is longer than LINE_MAX_BYTES (the rest of it is skipped). */
static int read_line(FILE *f, char **line, size_t *cap, size_t *len)
{
    errno = 0;
    ssize_t n = getline(line, cap, f);
    if (n < 0) return ferror(f) ? -1 : 0;
    size_t m = (size_t)n;
    if (m > LINE_MAX_BYTES) return -2;
    while (m && ((*line)[m - 1] == '\n' || (*line)[m - 1] == '\r')) m--;
    (*line)[m] = '\0';
    *len = m;
    return 1;
}

/* The text of a line: the "text" member when the line is a JSON object
 * that has one, else the raw line.  *tree is set when JSON was parsed (the
 * caller frees it; the text borrows from it). */
static void line_text(const char *line, size_t len, yajl_val *tree, const char **text,
                      size_t *tlen)
{
    *tree = NULL;
    *text = line;
    *tlen = len;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == len || line[i] != '{') return;
    char ebuf[128];
    yajl_val v = yajl_tree_parse(line, ebuf, sizeof ebuf);
    if (!v) return;
    const char *path[] = {"text", NULL};
    yajl_val t = yajl_tree_get(v, path, yajl_t_string);
    if (!t || !YAJL_GET_STRING(t)) {
        yajl_tree_free(v);
        return;
    }
    *tree = v;
    *text = YAJL_GET_STRING(t);
    *tlen = strlen(*text);
}

static void put_features(al_buf_t *b, uint32_t families)
{
    al_buf_putc(b, '[');
    bool first = true;
    for (unsigned f = 0; f < AL_INJ_NFAM; f++) {
        if (!(families & (1u << f))) continue;
        if (!first) al_buf_putc(b, ',');
        first = false;
        al_buf_json_str(b, al_inject_family_name(f), strlen(al_inject_family_name(f)));
    }
    al_buf_putc(b, ']');
}

/* --- scan ------------------------------------------------------------- */

/* The scanner for scan: built-in entities, plus the custom entities of the
 * configuration's defaults or of an agent.  Returns the exit code. */
static int scan_scanner(const char *prog, const char *config, const char *agent,
                        al_scanner_t **out)
{
    const al_custom_entity_t *custom = NULL;
    size_t n_custom = 0;
    al_config_t *cfg = NULL;
    al_guard_set_t *set = NULL;
    char err[512];
    int rc = 0;

    *out = NULL;
    if (config || agent) {
        const char *path = al__cli_config_path(config);
        if (al_cli_load_config(path, &cfg) != AL_OK) return 2;
        const al_guard_policy_t *pol = NULL;
        if (agent) {
            if (!al__cli_agent_declared(prog, cfg, agent, path)) {
                rc = 2;
                goto out;
            }
            const al_agent_t *a = al_config_agent(cfg, agent, strlen(agent));
            pol = a ? a->guard : NULL;
            if (!pol)
                fprintf(stderr, "%s: agent '%s' has no guardrails; scanning with the built-in "
                        "entities\n", prog, agent);
        } else if (cfg->guard_json) {
            set = al_guard_set_new();
            if (al_guard_policy_build(set, cfg->guard_json, NULL, cfg, &pol, err, sizeof err) !=
                AL_OK) {
                fprintf(stderr, "%s: %s: %s\n", prog, path, err);
                rc = 2;
                goto out;
            }
        }
        if (pol) {
            custom = pol->custom;
            n_custom = pol->n_custom;
        }
    }
    if (al_scanner_build(custom, n_custom, true, out, err, sizeof err) != AL_OK) {
        fprintf(stderr, "%s: cannot build the scanner: %s\n", prog, err);
        rc = config ? 2 : 1;
    }
out:
    /* the scanner copied what it needs (names, validators) at build */
    al_guard_set_free(set);
    if (cfg) al_config_unref(cfg);
    return rc;
}

static int guard_scan(int argc, char **argv)
{
    static const char prog[] = "airlock guard scan";
    const char *config = NULL, *agent = NULL;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &agent, NULL},
    };
    const char *pos[1];
    size_t npos;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_guard(stdout);
        return 0;
    }
    if (rc) {
        usage_guard(stderr);
        return 2;
    }
    al_scanner_t *sc = NULL;
    if ((rc = scan_scanner(prog, config, agent, &sc)) != 0) return rc;

    al_scan_result_t *r = al_malloc(sizeof(*r));
    al_buf_t out;
    al_buf_init(&out, 1 << 20);
    char *line = NULL;
    size_t cap = 0, len = 0;
    unsigned long lineno = 0;
    for (;;) {
        int lr = read_line(stdin, &line, &cap, &len);
        if (lr == 0) break;
        lineno++;
        if (lr == -1) {
            fprintf(stderr, "%s: cannot read stdin: %s\n", prog, strerror(errno));
            rc = 1;
            break;
        }
        al_buf_reset(&out);
        if (lr == -2) {
            fprintf(stderr, "%s: line %lu: longer than %u bytes, skipped\n", prog, lineno,
                    LINE_MAX_BYTES);
            al_buf_puts(&out, "{\"error\":\"line too long\"}\n");
            fwrite(out.p, 1, out.len, stdout);
            rc = 1;
            continue;
        }
        yajl_val tree;
        const char *text;
        size_t tlen;
        line_text(line, len, &tree, &text, &tlen);
        int sr = al_scanner_scan(sc, text, tlen, AL_SCAN_PII | AL_SCAN_INJECT, r);
        if (sr != AL_OK) {
            fprintf(stderr, "%s: line %lu: scan failed: %s\n", prog, lineno, al_strerror(sr));
            al_buf_puts(&out, "{\"error\":\"scan failed\"}\n");
            rc = 1;
        } else {
            al_buf_puts(&out, "{\"findings\":[");
            for (size_t i = 0; i < r->n_finds; i++) {
                const al_find_t *f = &r->finds[i];
                const char *name = al_scanner_entity_name(sc, f->entity);
                if (!name) name = "UNKNOWN";
                if (i) al_buf_putc(&out, ',');
                al_buf_puts(&out, "{\"entity\":");
                al_buf_json_str(&out, name, strlen(name));
                al_buf_printf(&out, ",\"start\":%u,\"end\":%u}", (unsigned)f->start,
                              (unsigned)f->end);
            }
            al_buf_printf(&out, "],\"injection\":{\"score\":%.2f,\"features\":", r->inj.score);
            put_features(&out, r->inj.families);
            al_buf_puts(&out, "}}\n");
        }
        if (tree) yajl_tree_free(tree);
        if (out.err) {
            fprintf(stderr, "%s: line %lu: output too large\n", prog, lineno);
            rc = 1;
            continue;
        }
        fwrite(out.p, 1, out.len, stdout);
        if (ferror(stdout)) {
            rc = 1;
            break;
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) rc = 1;
    free(line);
    al_buf_free(&out);
    free(r);
    al_scanner_free(sc);
    return rc;
}

/* --- eval ------------------------------------------------------------- */

typedef enum { PART_ALL, PART_TUNE, PART_TEST } part_t;

typedef struct eval_stats {
    unsigned long rows, tp, fp, fn, tn, skipped;
    unsigned long fam_pos[AL_INJ_NFAM], fam_neg[AL_INJ_NFAM];
} eval_stats_t;

/* label: 0/1 as a number, true/false, or "0"/"1".  -1 when absent or other. */
static int row_label(yajl_val v)
{
    const char *path[] = {"label", NULL};
    yajl_val l = yajl_tree_get(v, path, yajl_t_any);
    if (!l) return -1;
    if (YAJL_IS_TRUE(l)) return 1;
    if (YAJL_IS_FALSE(l)) return 0;
    if (YAJL_IS_INTEGER(l)) {
        long long x = YAJL_GET_INTEGER(l);
        return x == 0 || x == 1 ? (int)x : -1;
    }
    if (YAJL_IS_DOUBLE(l)) {
        double x = YAJL_GET_DOUBLE(l);
        return x == 0.0 ? 0 : x == 1.0 ? 1 : -1;
    }
    if (YAJL_IS_STRING(l)) {
        const char *s = YAJL_GET_STRING(l);
        if (s && !strcmp(s, "1")) return 1;
        if (s && !strcmp(s, "0")) return 0;
    }
    return -1;
}

static double ratio(unsigned long a, unsigned long b)
{
    return b ? (double)a / (double)b : 0.0;
}

/* Shows a row for --errors: the first 160 bytes, control characters as
 * spaces. */
static void print_error_row(const char *kind, double score, uint32_t fam, const char *t,
                            size_t n)
{
    al_buf_t b;
    al_buf_init(&b, 4096);
    put_features(&b, fam);
    printf("  %s %.2f %s ", kind, score, b.err ? "[]" : b.p);
    size_t m = n > 160 ? 160 : n;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)t[i];
        putchar(c < 0x20 || c == 0x7f ? ' ' : c);
    }
    fputs(n > m ? "...\n" : "\n", stdout);
    al_buf_free(&b);
}

static int eval_file(const char *prog, const al_scanner_t *sc, const char *path, part_t part,
                     double threshold, bool errors, al_scan_result_t *r, eval_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0, len = 0;
    int rc = 0;
    for (;;) {
        int lr = read_line(f, &line, &cap, &len);
        if (lr == 0) break;
        if (lr == -1) {
            fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
            rc = 1;
            break;
        }
        if (lr == -2) {
            st->skipped++;
            continue;
        }
        if (len == 0) continue;
        char ebuf[128];
        yajl_val v = yajl_tree_parse(line, ebuf, sizeof ebuf);
        const char *tpath[] = {"text", NULL};
        yajl_val tv = v ? yajl_tree_get(v, tpath, yajl_t_string) : NULL;
        int label = v ? row_label(v) : -1;
        if (!tv || !YAJL_GET_STRING(tv) || label < 0) {
            st->skipped++;
            if (v) yajl_tree_free(v);
            continue;
        }
        const char *text = YAJL_GET_STRING(tv);
        size_t tlen = strlen(text);
        uint64_t h = fnv1a64(text, tlen);
        bool tune = (h & 1) == 0;
        if ((part == PART_TUNE && !tune) || (part == PART_TEST && tune)) {
            yajl_tree_free(v);
            continue;
        }
        int sr = al_scanner_scan(sc, text, tlen, AL_SCAN_INJECT, r);
        if (sr != AL_OK) {
            st->skipped++;
            yajl_tree_free(v);
            continue;
        }
        bool pred = r->inj.score >= threshold;
        st->rows++;
        if (label == 1 && pred) st->tp++;
        else if (label == 1) st->fn++;
        else if (pred) st->fp++;
        else st->tn++;
        for (unsigned fam = 0; fam < AL_INJ_NFAM; fam++) {
            if (!(r->inj.families & (1u << fam))) continue;
            if (label == 1) st->fam_pos[fam]++;
            else st->fam_neg[fam]++;
        }
        if (errors && pred != (label == 1))
            print_error_row(pred ? "FP" : "FN", r->inj.score, r->inj.families, text, tlen);
        yajl_tree_free(v);
    }
    free(line);
    fclose(f);
    return rc;
}

static void stats_json(al_buf_t *b, const char *path, const eval_stats_t *st)
{
    double p = ratio(st->tp, st->tp + st->fp), rc = ratio(st->tp, st->tp + st->fn);
    double f1 = p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0;
    al_buf_puts(b, "{\"file\":");
    al_buf_json_str(b, path, strlen(path));
    al_buf_printf(b, ",\"rows\":%lu,\"skipped\":%lu,\"tp\":%lu,\"fp\":%lu,\"fn\":%lu,\"tn\":%lu,"
                     "\"precision\":%.4f,\"recall\":%.4f,\"f1\":%.4f,\"families\":{",
                  st->rows, st->skipped, st->tp, st->fp, st->fn, st->tn, p, rc, f1);
    for (unsigned f = 0; f < AL_INJ_NFAM; f++) {
        if (f) al_buf_putc(b, ',');
        const char *n = al_inject_family_name(f);
        al_buf_json_str(b, n, strlen(n));
        al_buf_printf(b, ":{\"label1\":%lu,\"label0\":%lu}", st->fam_pos[f], st->fam_neg[f]);
    }
    al_buf_puts(b, "}}");
}

static void stats_text(const char *path, const char *part, double threshold,
                       const eval_stats_t *st)
{
    double p = ratio(st->tp, st->tp + st->fp), rc = ratio(st->tp, st->tp + st->fn);
    double f1 = p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0;
    printf("%s (part %s, threshold %.2f)\n", path, part, threshold);
    printf("  rows %lu  TP %lu  FP %lu  FN %lu  TN %lu", st->rows, st->tp, st->fp, st->fn,
           st->tn);
    if (st->skipped) printf("  skipped %lu", st->skipped);
    printf("\n  precision %.3f  recall %.3f  F1 %.3f\n", p, rc, f1);
    printf("  fired on label 1 / label 0:");
    for (unsigned f = 0; f < AL_INJ_NFAM; f++)
        printf(" %s %lu/%lu", al_inject_family_name(f), st->fam_pos[f], st->fam_neg[f]);
    putchar('\n');
}

static int guard_eval(int argc, char **argv)
{
    static const char prog[] = "airlock guard eval";
    const char *thr = NULL, *partarg = NULL;
    bool json = false, errors = false;
    const al__cli_flag_t flags[] = {
        {"--threshold", "-t", &thr, NULL},
        {"--part", NULL, &partarg, NULL},
        {"--json", NULL, NULL, &json},
        {"--errors", NULL, NULL, &errors},
    };
    const char *pos[64];
    size_t npos = 0;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos,
                           AL_ARRAY_LEN(pos), &npos);
    if (rc == 1) {
        usage_guard(stdout);
        return 0;
    }
    if (rc) {
        usage_guard(stderr);
        return 2;
    }
    if (npos == 0) {
        fprintf(stderr, "%s: name at least one JSONL file\n", prog);
        usage_guard(stderr);
        return 2;
    }
    double threshold = AL_INJECT_DEFAULT_THRESHOLD;
    if (thr) {
        char *end = NULL;
        errno = 0;
        threshold = strtod(thr, &end);
        if (errno || !end || end == thr || *end || !isfinite(threshold) || threshold < 0 ||
            threshold > 1) {
            fprintf(stderr, "%s: --threshold '%s': expected a number from 0 to 1\n", prog, thr);
            return 2;
        }
    }
    part_t part = PART_ALL;
    const char *partname = "all";
    if (partarg) {
        if (!strcmp(partarg, "tune")) part = PART_TUNE;
        else if (!strcmp(partarg, "test")) part = PART_TEST;
        else if (strcmp(partarg, "all") != 0) {
            fprintf(stderr, "%s: --part '%s': expected tune, test or all\n", prog, partarg);
            return 2;
        }
        partname = partarg;
    }

    al_scanner_t *sc = NULL;
    char err[512];
    if (al_scanner_build(NULL, 0, true, &sc, err, sizeof err) != AL_OK) {
        fprintf(stderr, "%s: cannot build the scanner: %s\n", prog, err);
        return 1;
    }
    al_scan_result_t *r = al_malloc(sizeof(*r));
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    if (json)
        al_buf_printf(&b, "{\"threshold\":%.4f,\"part\":\"%s\",\"files\":[", threshold, partname);
    rc = 0;
    for (size_t i = 0; i < npos; i++) {
        eval_stats_t st;
        if (!json && errors) printf("%s: misclassified rows\n", pos[i]);
        if (eval_file(prog, sc, pos[i], part, threshold, errors && !json, r, &st) != 0) {
            rc = 1;
            continue;
        }
        if (json) {
            if (i) al_buf_putc(&b, ',');
            stats_json(&b, pos[i], &st);
        } else {
            stats_text(pos[i], partname, threshold, &st);
        }
    }
    if (json) {
        al_buf_puts(&b, "]}\n");
        if (b.err) rc = 1;
        else fwrite(b.p, 1, b.len, stdout);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) rc = 1;
    al_buf_free(&b);
    free(r);
    al_scanner_free(sc);
    return rc;
}

int al_cli_guard(int argc, char **argv)
{
    if (argc < 1) {
        usage_guard(stderr);
        return 2;
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "scan")) return guard_scan(argc, argv);
    if (!strcmp(sub, "eval")) return guard_eval(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_guard(stdout);
        return 0;
    }
    fprintf(stderr, "airlock guard: unknown subcommand '%s'\n", sub);
    usage_guard(stderr);
    return 2;
}
