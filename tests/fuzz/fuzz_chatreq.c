/* fuzz_chatreq.c - libFuzzer target for the request scanner and rewrite.
 * Every input is parsed; an accepted body must also be accepted by YAJL (we
 * must never pass on JSON that a standard parser refuses), and its rewrite
 * (new model needing escapes, usage forced) must parse again with the new
 * model, include_usage true when streaming, and every other field unchanged.
 * Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "pipeline/chatreq.h"

static void check(bool ok)
{
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char model[] = "fuzz/\"m\"\\\xc3\xa9\x01-model";
    al_chatreq_t rq, again;
    char err[160];
    al_buf_t out;

    /* an exact-size copy so ASan sees any read past the end */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    int rc = al_chatreq_parse(body, size, &rq, err, sizeof err);
    if (rc != 0) {
        check(rc == AL_EPARSE && err[0] != '\0');
        free(body);
        return 0;
    }
    check(rq.model_name_len >= strlen(rq.model_name));

    /* differential: YAJL must accept what we accepted */
    char *z = malloc(size + 1);
    memcpy(z, body, size);
    z[size] = '\0';
    char yerr[64];
    yajl_val tree = yajl_tree_parse(z, yerr, sizeof yerr);
    check(tree != NULL && YAJL_IS_OBJECT(tree));
    yajl_tree_free(tree);
    free(z);

    al_buf_init(&out, size * 2 + 4096);
    rc = al_chatreq_rewrite(body, size, &rq, model, sizeof model - 1, true, &out);
    check(rc == 0);
    rc = al_chatreq_parse(out.p, out.len, &again, err, sizeof err);
    check(rc == 0);
    check(again.model_name_len == sizeof model - 1);
    check(memcmp(again.model_name, model, sizeof model - 1) == 0);
    check(again.stream == rq.stream);
    check(!rq.stream || again.include_usage_true);
    check(again.n_messages == rq.n_messages);
    check(again.prompt_bytes == rq.prompt_bytes);
    check(again.last_user_hash == rq.last_user_hash);
    check(again.max_tokens == rq.max_tokens);
    check(again.has_tools == rq.has_tools);
    check(strcmp(again.tool_name, rq.tool_name) == 0);
    check(strcmp(again.tool_choice, rq.tool_choice) == 0);
    check(strcmp(again.response_format, rq.response_format) == 0);
    check(again.n_inputs == rq.n_inputs);

    /* without forcing, only the model token may change */
    al_buf_reset(&out);
    check(al_chatreq_rewrite(body, size, &rq, NULL, 0, false, &out) == 0);
    check(out.len == size && memcmp(out.p, body, size) == 0);
    al_buf_free(&out);
    free(body);
    return 0;
}
