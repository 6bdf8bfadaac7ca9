/* common.c - allocation, slices, the capped builder, clocks, randomness and
 * small encoders shared by every module. */
#include "util/common.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *al_strerror(int err)
{
    switch (err) {
    case AL_OK: return "ok";
    case AL_EINVAL: return "invalid argument";
    case AL_ENOMEM: return "out of memory";
    case AL_EIO: return "i/o error";
    case AL_ETOOBIG: return "too big";
    case AL_ENOTFOUND: return "not found";
    case AL_EPARSE: return "parse error";
    case AL_EFULL: return "queue full";
    case AL_EEXIST: return "already exists";
    case AL_ETIMEDOUT: return "timed out";
    case AL_ESTATE: return "invalid state";
    default: return "unknown error";
    }
}

void al__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"assertion failed: %s at %s:%d\"}\n",
            expr, file, line);
    abort();
}

static void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void *al_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *al_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *al_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *al_strndup(const char *s, size_t n)
{
    char *p = al_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *al_strdup(const char *s)
{
    return al_strndup(s, strlen(s));
}

bool al_slice_eq(al_slice_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.p, lit, n) == 0;
}

bool al_mem_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return false;
    }
    return true;
}

bool al_slice_ieq(al_slice_t a, const char *lit)
{
    return al_mem_ieq(a.p, a.len, lit, strlen(lit));
}

int al_parse_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0) return AL_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return AL_EINVAL;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return AL_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return AL_OK;
}

/* --- al_buf_t ---------------------------------------------------------- */

void al_buf_init(al_buf_t *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->err = 0;
}

void al_buf_free(al_buf_t *b)
{
    AL_FREE(b->p);
    b->len = b->cap = 0;
    b->err = 0;
}

void al_buf_reset(al_buf_t *b)
{
    b->len = 0;
    b->err = 0;
    if (b->p) b->p[0] = '\0';
}

static int buf_reserve(al_buf_t *b, size_t extra)
{
    if (b->err) return b->err;
    if (extra > b->max || b->len > b->max - extra) {
        b->err = AL_ETOOBIG;
        return b->err;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return AL_OK;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) { ncap = need; break; }
        ncap *= 2;
    }
    if (ncap > b->max + 1) ncap = b->max + 1;
    if (ncap < need) ncap = need;
    b->p = al_realloc(b->p, ncap);
    b->cap = ncap;
    return AL_OK;
}

int al_buf_reserve(al_buf_t *b, size_t len)
{
    return buf_reserve(b, len);
}

int al_buf_append(al_buf_t *b, const void *p, size_t len)
{
    if (buf_reserve(b, len) != AL_OK) return b->err;
    if (len) memcpy(b->p + b->len, p, len);
    b->len += len;
    b->p[b->len] = '\0';
    return AL_OK;
}

int al_buf_puts(al_buf_t *b, const char *s)
{
    return al_buf_append(b, s, strlen(s));
}

int al_buf_putc(al_buf_t *b, char c)
{
    return al_buf_append(b, &c, 1);
}

int al_buf_vprintf(al_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    char small[256];
    if (b->err) return b->err;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->err = AL_EINVAL;
        return b->err;
    }
    if ((size_t)n < sizeof small) return al_buf_append(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n) != AL_OK) return b->err;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return AL_OK;
}

int al_buf_printf(al_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = al_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;
        if (c == 0xED && p[1] > 0x9F) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

int al_buf_json_str(al_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    if (!s) {
        s = "";
        p = (const unsigned char *)s;
        len = 0;
    }
    al_buf_putc(b, '"');
    while (i < len) {
        unsigned char c = p[i];
        size_t ul;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        al_buf_append(b, s + i - run, run);
        run = 0;
        if (c >= 0x80) {
            ul = utf8_len(p + i, len - i);
            if (ul == 0) {
                al_buf_append(b, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                al_buf_append(b, s + i, ul);
                i += ul;
            }
            continue;
        }
        switch (c) {
        case '"': al_buf_append(b, "\\\"", 2); break;
        case '\\': al_buf_append(b, "\\\\", 2); break;
        case '\n': al_buf_append(b, "\\n", 2); break;
        case '\r': al_buf_append(b, "\\r", 2); break;
        case '\t': al_buf_append(b, "\\t", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            al_buf_append(b, esc, 6);
        }
        }
        i++;
    }
    al_buf_append(b, s + i - run, run);
    return al_buf_putc(b, '"');
}

void al_buf_consume(al_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p) b->p[b->len] = '\0';
}

char *al_buf_take(al_buf_t *b, size_t *len)
{
    char *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
    return p;
}

/* --- clocks, randomness, encoders -------------------------------------- */

uint64_t al_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t al_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void al_random(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"RAND_bytes failed\"}\n");
        abort();
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void al_fast_random(void *out, size_t n)
{
    static _Thread_local uint64_t st[4];
    static _Thread_local bool seeded;
    uint8_t *o = out;
    if (!seeded) {
        do al_random(st, sizeof st);
        while (!(st[0] | st[1] | st[2] | st[3]));
        seeded = true;
    }
    while (n) {
        uint64_t r = rotl(st[1] * 5, 7) * 9, t = st[1] << 17;
        st[2] ^= st[0];
        st[3] ^= st[1];
        st[1] ^= st[2];
        st[0] ^= st[3];
        st[2] ^= t;
        st[3] = rotl(st[3], 45);
        size_t k = n < 8 ? n : 8;
        memcpy(o, &r, k);
        o += k;
        n -= k;
    }
}

size_t al_base64url(const uint8_t *in, size_t n, char *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

void al_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void al_request_id(char *out)
{
    uint8_t r[12];
    al_fast_random(r, sizeof r);
    memcpy(out, "req_", 4);
    al_hex(r, sizeof r, out + 4);
}

int al_parse_duration_ms(const char *s, uint64_t *out)
{
    size_t n = strlen(s), i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    uint64_t v, mul;
    if (i == 0 || al_parse_u64(s, i, &v) != AL_OK) return AL_EINVAL;
    const char *u = s + i;
    if (strcmp(u, "ms") == 0) mul = 1;
    else if (strcmp(u, "s") == 0) mul = 1000;
    else if (strcmp(u, "m") == 0) mul = 60000;
    else if (strcmp(u, "h") == 0) mul = 3600000;
    else if (strcmp(u, "d") == 0) mul = 86400000;
    else return AL_EINVAL;
    if (v > UINT64_MAX / mul) return AL_EINVAL;
    *out = v * mul;
    return AL_OK;
}
