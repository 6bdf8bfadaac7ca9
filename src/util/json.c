/* json.c - the YAJL tree helpers of json.h.  Lookup walks the members from
 * the end so the last duplicate wins, as the translators have always read
 * them; serialization re-emits strings through al_buf_json_str and numbers
 * as YAJL kept their text; the depth scan is one pass over the bytes
 * tracking only "inside a string" and the bracket depth. */
#include "util/json.h"
#include <stdbool.h>
#include <string.h>

yajl_val al_json_get(yajl_val obj, const char *key)
{
    if (!YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = obj->u.object.len; i-- > 0;)
        if (obj->u.object.keys[i] && strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static void put_str(al_buf_t *b, const char *s)
{
    al_buf_json_str(b, s, s ? strlen(s) : 0);
}

void al_json_put(al_buf_t *b, yajl_val v)
{
    if (!v) {
        al_buf_puts(b, "null");
        return;
    }
    switch (v->type) {
    case yajl_t_string: put_str(b, v->u.string); break;
    case yajl_t_number: al_buf_puts(b, v->u.number.r); break;
    case yajl_t_true: al_buf_puts(b, "true"); break;
    case yajl_t_false: al_buf_puts(b, "false"); break;
    case yajl_t_object:
        al_buf_putc(b, '{');
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i) al_buf_putc(b, ',');
            put_str(b, v->u.object.keys[i]);
            al_buf_putc(b, ':');
            al_json_put(b, v->u.object.values[i]);
        }
        al_buf_putc(b, '}');
        break;
    case yajl_t_array:
        al_buf_putc(b, '[');
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i) al_buf_putc(b, ',');
            al_json_put(b, v->u.array.values[i]);
        }
        al_buf_putc(b, ']');
        break;
    default: al_buf_puts(b, "null"); break;
    }
}

size_t al_json_depth(const char *p, size_t len)
{
    size_t depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}
