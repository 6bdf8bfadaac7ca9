/* log.h - JSON-lines logging on stderr.  The macro checks the level before
 * evaluating its arguments.  Never pass keys or prompts. */
#ifndef AL_LOG_H
#define AL_LOG_H

enum { AL_LOG_DEBUG = 0, AL_LOG_INFO = 1, AL_LOG_WARN = 2, AL_LOG_ERROR = 3 };

extern _Atomic int al_log_level; /* reload writes it while workers read it */
/* Parse "debug" | "info" | "warn" | "error"; -1 if unknown. */
int al_log_level_parse(const char *s);
/* fmt produces the human message (it is JSON-escaped); kv is an optional
 * pre-rendered JSON fragment of extra fields without braces ("\"a\":1"),
 * or NULL. Thread-safe: one write(2) per line. */
void al__log(int level, const char *kv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define AL_LOG(level, ...)                               \
    do {                                                 \
        if ((level) >= al_log_level) al__log((level), NULL, __VA_ARGS__); \
    } while (0)
#define AL_LOGKV(level, kv, ...)                         \
    do {                                                 \
        if ((level) >= al_log_level) al__log((level), (kv), __VA_ARGS__); \
    } while (0)
#define al_debug(...) AL_LOG(AL_LOG_DEBUG, __VA_ARGS__)
#define al_info(...) AL_LOG(AL_LOG_INFO, __VA_ARGS__)
#define al_warn(...) AL_LOG(AL_LOG_WARN, __VA_ARGS__)
#define al_error(...) AL_LOG(AL_LOG_ERROR, __VA_ARGS__)

#endif
