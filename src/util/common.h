/* common.h - error codes, allocation, slices and the capped string builder
 * shared by every module.  Small internal allocations abort on failure (they
 * are bounded by configuration, never by a peer); anything sized by a peer goes
 * through al_buf_t, whose hard cap turns growth into a clean AL_ETOOBIG. */
#ifndef AL_COMMON_H
#define AL_COMMON_H

#ifndef AL_VERSION
#define AL_VERSION "0.1.0"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* Error codes: 0 is success, failures are negative. */
enum {
    AL_OK = 0,
    AL_EINVAL = -1,   /* bad argument or input */
    AL_ENOMEM = -2,
    AL_EIO = -3,      /* OS or library I/O failure */
    AL_ETOOBIG = -4,  /* a cap was hit */
    AL_ENOTFOUND = -5,
    AL_EPARSE = -6,   /* malformed input */
    AL_EFULL = -7,    /* a bounded queue is full */
    AL_EEXIST = -8,
    AL_ETIMEDOUT = -9,
    AL_ESTATE = -10,  /* call not valid in the current state */
};

const char *al_strerror(int err);

#define AL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define AL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define AL_UNUSED(x) ((void)(x))

/* Cheap assertions stay on in release builds. */
#define AL_ASSERT(c)                                                        \
    do {                                                                    \
        if (!(c)) al__assert_fail(#c, __FILE__, __LINE__);                  \
    } while (0)
_Noreturn void al__assert_fail(const char *expr, const char *file, int line);

/* Allocation that aborts with a message on failure (internal sizes only). */
void *al_malloc(size_t n);
void *al_calloc(size_t n, size_t size);
void *al_realloc(void *p, size_t n);
char *al_strdup(const char *s);
char *al_strndup(const char *s, size_t n);
/* Free and NULL in one step. */
#define AL_FREE(p)       \
    do {                 \
        free(p);         \
        (p) = NULL;      \
    } while (0)

/* A borrowed byte range. */
typedef struct al_slice {
    const char *p;
    size_t len;
} al_slice_t;

#define AL_SLICE_LIT(s) ((al_slice_t){(s), sizeof(s) - 1})
bool al_slice_eq(al_slice_t a, const char *lit);          /* exact */
bool al_slice_ieq(al_slice_t a, const char *lit);         /* ASCII case-insensitive */
bool al_mem_ieq(const char *a, size_t alen, const char *b, size_t blen);

/* Parse a non-negative decimal integer of the whole slice; AL_EINVAL on any
 * other character, overflow or empty input. */
int al_parse_u64(const char *p, size_t len, uint64_t *out /* OUT */);

/* Growable byte buffer with a hard cap and a sticky error.  Append calls
 * after a failure are no-ops; check `err` once at the end.  The contents are
 * always NUL-terminated (the NUL is not counted in len) when p != NULL. */
typedef struct al_buf {
    char *p;
    size_t len;
    size_t cap;   /* allocated */
    size_t max;   /* hard cap on len */
    int err;      /* first error, sticky */
} al_buf_t;

void al_buf_init(al_buf_t *b, size_t max);
void al_buf_free(al_buf_t *b);
void al_buf_reset(al_buf_t *b);                 /* len = 0, err = 0, keeps memory */
int al_buf_append(al_buf_t *b, const void *p, size_t len);
/* Make room for len more bytes up front (a size hint; the cap still holds). */
int al_buf_reserve(al_buf_t *b, size_t len);
int al_buf_puts(al_buf_t *b, const char *s);
int al_buf_putc(al_buf_t *b, char c);
int al_buf_printf(al_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int al_buf_vprintf(al_buf_t *b, const char *fmt, va_list ap);
/* Append p/len as a quoted, escaped JSON string. Invalid UTF-8 is replaced
 * by U+FFFD so the output is always valid JSON. */
int al_buf_json_str(al_buf_t *b, const char *p, size_t len);
/* Drop the first n bytes. */
void al_buf_consume(al_buf_t *b, size_t n);
/* Take the allocation: returns p (caller frees) and resets b to empty. */
char *al_buf_take(al_buf_t *b, size_t *len /* OUT, may be NULL */);

/* Clocks. */
uint64_t al_now_ns(void);   /* monotonic */
int64_t al_wall_ms(void);   /* unix time in ms */

/* Random bytes from the OS CSPRNG (OpenSSL RAND_bytes); aborts on failure. */
void al_random(void *out, size_t n);
/* Fast non-cryptographic random bytes (per-thread xoshiro256** seeded from
 * the CSPRNG): for ids and jitter, never for secrets. */
void al_fast_random(void *out, size_t n);
/* Base64url without padding. out must hold 4*((n+2)/3)+1 bytes. */
size_t al_base64url(const uint8_t *in, size_t n, char *out);
/* Lower-case hex; out must hold 2n+1 bytes. */
void al_hex(const uint8_t *in, size_t n, char *out);
/* Fresh request id: "req_" + 24 hex chars, NUL-terminated; out >= 29 bytes. */
void al_request_id(char *out);

/* Duration with unit suffix ("250ms", "30s", "5m", "2h", "30d") to ms. */
int al_parse_duration_ms(const char *s, uint64_t *out /* OUT */);

#endif
