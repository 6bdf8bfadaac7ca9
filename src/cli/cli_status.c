/* cli_status.c - `airlock status`: the running gateway's live state, read
 * from GET /admin/v1/status on the admin listener the configuration names
 * (server.admin_listen; a wildcard address is reached through loopback).
 *
 * One blocking libcurl easy request (the process ran curl_global_init in
 * main): 5 s in all, plain http only, no redirects, never through a proxy (the
 * bearer token must not leave for a proxy the environment happens to name).
 * The answer is treated as hostile like any network input: at most 4 MiB is
 * kept, nesting deeper than 64 is refused before yajl_tree builds (and later
 * frees, recursively) its tree, and every field is type-checked, so a
 * malformed answer is an error message, never a crash.  --json prints the
 * body as it came; otherwise a summary and a table of the circuit breakers.
 * The token comes from --token or $AIRLOCK_ADMIN_TOKEN and is never
 * printed. */
#include "cli/cli.h"
#include "util/common.h"
#include "util/json.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define BODY_MAX (4u << 20)
#define JSON_DEPTH_MAX 64
#define TIMEOUT_MS 5000L

static void usage_status(FILE *f)
{
    fputs("usage: airlock status --config FILE [--token TOKEN] [--json]\n"
          "\n"
          "Shows the running gateway's state (workers, requests in flight, open\n"
          "escalations, circuit breakers) from its admin listener (server.admin_listen).\n"
          "The admin token comes from --token or $AIRLOCK_ADMIN_TOKEN (see airlock\n"
          "admin-token create).  --json prints the admin API's answer as is.  --config\n"
          "defaults to $AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

typedef struct sink {
    al_buf_t body;
    bool too_big;
} sink_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sink_t *s = ud;
    size_t len = size * n;
    if (al_buf_append(&s->body, p, len) != AL_OK) {
        s->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return len;
}

static yajl_val get(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    return YAJL_IS_OBJECT(obj) ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

/* A number field as text: integers as they are, others rounded; "-" when
 * absent or not a number. */
static void num_text(yajl_val v, char *out, size_t n)
{
    if (YAJL_IS_INTEGER(v)) snprintf(out, n, "%lld", YAJL_GET_INTEGER(v));
    else if (YAJL_IS_DOUBLE(v) && isfinite(YAJL_GET_DOUBLE(v)))
        snprintf(out, n, "%.0f", YAJL_GET_DOUBLE(v));
    else if (YAJL_IS_STRING(v)) snprintf(out, n, "%s", YAJL_GET_STRING(v));
    else snprintf(out, n, "-");
}

static const char *state_text(yajl_val v)
{
    if (YAJL_IS_STRING(v)) return YAJL_GET_STRING(v);
    if (YAJL_IS_INTEGER(v)) {
        switch (YAJL_GET_INTEGER(v)) {
        case 0: return "closed";
        case 1: return "open";
        case 2: return "half_open";
        default: break;
        }
    }
    return "-";
}

/* open_until: unix ms (seconds accepted: anything below 1e11), 0/null = "-". */
static void until_text(yajl_val v, char *out, size_t n)
{
    if (YAJL_IS_INTEGER(v)) {
        long long t = YAJL_GET_INTEGER(v);
        if (t > 0 && t < 100000000000LL) t *= 1000;
        al__cli_fmt_time(t, out, n);
    } else if (YAJL_IS_STRING(v) && YAJL_GET_STRING(v)[0]) {
        snprintf(out, n, "%s", YAJL_GET_STRING(v));
    } else {
        snprintf(out, n, "-");
    }
}

static void print_line(const char *name, yajl_val v)
{
    char t[64];
    num_text(v, t, sizeof t);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    printf("%-17s %s\n", name, t);
}

static int print_summary(const char *prog, const char *where, const char *body, size_t len)
{
    static const char *const heads[] = {"ROUTE", "TARGET", "STATE",  "REQS",
                                        "FAILS", "CONSEC", "OPENED", "OPEN_UNTIL"};
    char err[256];
    if (al_json_depth(body, len) > JSON_DEPTH_MAX) {
        fprintf(stderr, "%s: the answer from %s nests deeper than %d levels\n", prog, where,
                JSON_DEPTH_MAX);
        return 1;
    }
    err[0] = '\0';
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    if (!YAJL_IS_OBJECT(root)) {
        fprintf(stderr, "%s: the answer from %s is not a JSON object\n", prog, where);
        yajl_tree_free(root);
        return 1;
    }
    yajl_val ver = get(root, "version");
    printf("%-17s %s\n", "gateway", where);
    if (YAJL_IS_STRING(ver)) print_line("version", ver);
    print_line("workers", get(root, "workers"));
    print_line("in-flight", get(root, "inflight"));
    print_line("open escalations", get(root, "escalations_open"));

    yajl_val br = get(root, "breakers");
    size_t nb = YAJL_IS_ARRAY(br) ? br->u.array.len : 0;
    if (nb == 0) {
        printf("\nno circuit breakers (no route has served a request yet)\n");
    } else {
        al__cli_table_t t;
        putchar('\n');
        al__cli_table_init(&t, stdout, AL_ARRAY_LEN(heads), heads, "lllrrrrl");
        for (size_t i = 0; i < nb; i++) {
            yajl_val b = br->u.array.values[i];
            if (!YAJL_IS_OBJECT(b)) continue;
            char reqs[32], fails[32], consec[32], opened[32], until[64];
            const char *route = YAJL_GET_STRING(get(b, "route"));
            const char *target = YAJL_GET_STRING(get(b, "target"));
            num_text(get(b, "window_requests"), reqs, sizeof reqs);
            num_text(get(b, "window_failures"), fails, sizeof fails);
            num_text(get(b, "consecutive_failures"), consec, sizeof consec);
            num_text(get(b, "opened_total"), opened, sizeof opened);
            until_text(get(b, "open_until"), until, sizeof until);
            const char *cells[] = {route ? route : "-", target ? target : "-",
                                   state_text(get(b, "state")), reqs, fails, consec, opened,
                                   until};
            al__cli_table_row(&t, cells);
        }
        al__cli_table_end(&t);
    }
    yajl_tree_free(root);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

/* The admin API's error message, if the body is its JSON error shape. */
static void api_message(const char *body, size_t len, char *out, size_t n)
{
    out[0] = '\0';
    if (len == 0 || al_json_depth(body, len) > JSON_DEPTH_MAX) return;
    yajl_val root = yajl_tree_parse(body, NULL, 0);
    const char *msg = YAJL_GET_STRING(get(get(root, "error"), "message"));
    if (msg) {
        snprintf(out, n, ": %s", msg);
        for (char *p = out; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    }
    yajl_tree_free(root);
}

int al_cli_status(int argc, char **argv)
{
    static const char prog[] = "airlock status";
    const char *config = NULL, *token = NULL;
    bool json = false;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--token", NULL, &token, NULL},
        {"--json", NULL, NULL, &json},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    al_buf_t auth;
    sink_t sink;
    char url[160], where[128], curl_err[CURL_ERROR_SIZE], msg[300];
    int rc = al__cli_parse(prog, argc, argv, 0, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_status(stdout);
        return 0;
    }
    if (rc) {
        usage_status(stderr);
        return 2;
    }
    if (!token || !*token) token = getenv("AIRLOCK_ADMIN_TOKEN");
    if (!token || !*token) {
        fprintf(stderr, "%s: no admin token: pass --token TOKEN or set AIRLOCK_ADMIN_TOKEN "
                        "(see airlock admin-token create)\n", prog);
        return 2;
    }
    for (const char *p = token; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            fprintf(stderr, "%s: the admin token contains spaces or control characters\n",
                    prog);
            return 2;
        }
    }
    if (strlen(token) > 512) {
        fprintf(stderr, "%s: the admin token is longer than 512 bytes\n", prog);
        return 2;
    }

    al_buf_init(&auth, 1024);
    al_buf_init(&sink.body, BODY_MAX);
    sink.too_big = false;
    if (al_cli_load_config(al__cli_config_path(config), &cfg) != AL_OK) {
        rc = 2;
        goto out;
    }
    if (cfg->server.admin_port == 0) {
        fprintf(stderr, "%s: the admin listener is disabled (server.admin_listen in %s)\n",
                prog, cfg->path);
        rc = 2;
        goto out;
    }
    /* A wildcard listen address is reached through loopback. */
    const char *host = cfg->server.admin_host ? cfg->server.admin_host : "127.0.0.1";
    if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
    else if (strcmp(host, "::") == 0) host = "::1";
    bool v6 = strchr(host, ':') != NULL;
    snprintf(where, sizeof where, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
             (unsigned)cfg->server.admin_port);
    snprintf(url, sizeof url, "http://%s/admin/v1/status", where);

    al_buf_printf(&auth, "Authorization: Bearer %s", token);
    h = curl_easy_init();
    if (!h || auth.err || !(hdrs = curl_slist_append(NULL, auth.p))) {
        fprintf(stderr, "%s: cannot set up the HTTP request\n", prog);
        rc = 1;
        goto out;
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
    curl_easy_setopt(h, CURLOPT_USERAGENT, "airlock-cli");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (sink.too_big)
            fprintf(stderr, "%s: the answer from %s is larger than 4 MiB\n", prog, where);
        else if (cc == CURLE_COULDNT_CONNECT)
            fprintf(stderr, "%s: no gateway answering on %s\n", prog, where);
        else if (cc == CURLE_OPERATION_TIMEDOUT)
            fprintf(stderr, "%s: the gateway on %s did not answer within %ld s\n", prog, where,
                    TIMEOUT_MS / 1000);
        else
            fprintf(stderr, "%s: request to %s failed: %s\n", prog, where,
                    curl_err[0] ? curl_err : curl_easy_strerror(cc));
        rc = 1;
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    const char *body = sink.body.p ? sink.body.p : "";
    if (code == 401 || code == 403) {
        fprintf(stderr, "%s: the admin API refused the token (HTTP %ld)\n", prog, code);
        rc = 1;
        goto out;
    }
    if (code != 200) {
        api_message(body, sink.body.len, msg, sizeof msg);
        fprintf(stderr, "%s: the admin API on %s answered HTTP %ld%s\n", prog, where, code, msg);
        rc = 1;
        goto out;
    }
    if (json) {
        fwrite(body, 1, sink.body.len, stdout);
        if (sink.body.len == 0 || body[sink.body.len - 1] != '\n') putchar('\n');
        rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    } else {
        rc = print_summary(prog, where, body, sink.body.len);
    }
out:
    if (h) curl_easy_cleanup(h);
    /* The header (and curl's copy of it) held the token. */
    for (struct curl_slist *l = hdrs; l; l = l->next)
        if (l->data) explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(hdrs);
    if (auth.p) explicit_bzero(auth.p, auth.len);
    al_buf_free(&auth);
    al_buf_free(&sink.body);
    al_config_unref(cfg);
    return rc;
}
