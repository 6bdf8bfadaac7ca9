/* witness.h - sending signed checkpoints to witnesses.
 *
 * Every checkpoint the gateway signs is also appended to an external file
 * (audit.witness.file: the note followed by an empty line, O_APPEND, fsync)
 * and/or POSTed (Content-Type: text/plain; the note as the body, plus the
 * configured headers) to a webhook (audit.witness.url), so whoever runs
 * the database cannot rewrite history without the copies disagreeing.
 * al_witness_post copies the note into a bounded queue (64 notes; when
 * full the oldest is dropped and counted) and returns at once; a thread
 * does the file write and the POST (5 s timeout, retried on connection
 * errors, 429 and 5xx up to 5 times with backoff 250 ms doubling). */
#ifndef AL_AUDIT_WITNESS_H
#define AL_AUDIT_WITNESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct al_witness al_witness_t;

typedef struct al_witness_opts {
    const char *file;                /* NULL = none */
    const char *url;                 /* NULL = none */
    const char *const *headers;      /* "Name: value" lines, copied */
    size_t n_headers;
} al_witness_opts_t;

/* 0 (with *out NULL when neither file nor url is set), AL_EIO with err. */
int al_witness_start(const al_witness_opts_t *o, al_witness_t **out /* OUT */, char *err,
                     size_t errlen);
void al_witness_post(al_witness_t *w, const char *note, size_t len);   /* NULL w ok */
/* Deliver what is queued (waiting at most wait_ms), stop, free.  NULL ok. */
void al_witness_stop(al_witness_t *w, uint32_t wait_ms);

typedef struct al_witness_stats {
    uint64_t written, posted, failed, dropped;
} al_witness_stats_t;
void al_witness_stats(const al_witness_t *w, al_witness_stats_t *out /* OUT */);

#endif
