/* fuzz_config.c - libFuzzer target for the YAML configuration loader.
 *
 * The input is handed to al_config_load_buf as a whole file; every
 * environment variable exists (its value is "x") so api_key_env lookups
 * succeed and the fuzzer reaches the models and agents sections.  A
 * successful load is unreferenced at once, so ASan catches leaks on both the
 * success and the error paths; a failed load must leave one line in err. */
#include "config/config.h"
#include "util/common.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char *fuzz_env(const char *name)
{
    (void)name;
    return "x";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    al_config_t *c = NULL;
    char err[512];

    int rc = al_config_load_buf("fuzz.yaml", (const char *)data, size, fuzz_env, &c, err,
                                sizeof err);
    if (rc == 0) {
        AL_ASSERT(c != NULL && c->hash[64] == '\0');
        for (size_t i = 0; i < c->n_models; i++)
            AL_ASSERT(al_config_model(c, c->models[i].alias, strlen(c->models[i].alias)) ==
                      &c->models[i]);
        al_config_unref(c);
    } else {
        AL_ASSERT(c == NULL && err[0] != '\0' && strchr(err, '\n') == NULL);
    }
    return 0;
}
