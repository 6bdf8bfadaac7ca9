/* log.c - JSON-lines log writer.  Each line is built in a stack buffer and
 * written with one write(2) so lines from different threads never interleave. */
#include "util/log.h"
#include "util/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int al_log_level = AL_LOG_INFO;

int al_log_level_parse(const char *s)
{
    if (!strcmp(s, "debug")) return AL_LOG_DEBUG;
    if (!strcmp(s, "info")) return AL_LOG_INFO;
    if (!strcmp(s, "warn")) return AL_LOG_WARN;
    if (!strcmp(s, "error")) return AL_LOG_ERROR;
    return -1;
}

void al__log(int level, const char *kv, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char msg[1024], tbuf[40];
    al_buf_t b;
    va_list ap;
    struct timespec ts;
    struct tm tm;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);

    al_buf_init(&b, 8192);
    al_buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", tbuf,
                  ts.tv_nsec / 1000000, names[level < 0 ? 0 : level > 3 ? 3 : level]);
    al_buf_json_str(&b, msg, (size_t)n);
    if (kv && *kv) {
        al_buf_putc(&b, ',');
        al_buf_puts(&b, kv);
    }
    al_buf_puts(&b, "}\n");
    if (!b.err) {
        ssize_t w = write(STDERR_FILENO, b.p, b.len);
        (void)w;
    }
    al_buf_free(&b);
}
