/* route.c - the pure decisions of a route: attempt outcomes and their
 * classes, the order in which to try targets, whether a request fits a
 * model's context window, retry backoff and Retry-After parsing.
 *
 * Nothing here keeps state or reads a clock: the caller passes the monotonic
 * time (for breaker peeks), the wall time (for HTTP dates) and a random
 * source, so every decision is reproducible in tests.  Ordering splits the
 * targets into healthy ones (breaker not OPEN at now; half-open counts as
 * healthy, allow() decides who probes) and open ones, orders the healthy
 * ones by strategy (configured order; a weighted draw without replacement;
 * ascending latency EWMA with a share of uniform exploration) and appends
 * the open ones in configured order.  Retry-After accepts delta-seconds
 * (integer or decimal) and the IMF-fixdate form of HTTP-date, parsed by
 * hand; values are capped at one day. */
#include "reliab/route.h"

#include <string.h>

#include "util/common.h"

#define DAY_MS 86400000LL

/* --- outcomes ----------------------------------------------------------- */

const char *al_attempt_outcome_name(al_attempt_outcome_t o)
{
    switch (o) {
    case AL_ATT_OK: return "ok";
    case AL_ATT_HTTP_429: return "http_429";
    case AL_ATT_HTTP_5XX: return "http_5xx";
    case AL_ATT_HTTP_AUTH: return "http_auth";
    case AL_ATT_HTTP_CONTEXT: return "context_length";
    case AL_ATT_HTTP_4XX: return "http_4xx";
    case AL_ATT_TIMEOUT: return "timeout";
    case AL_ATT_CONNECT: return "connect_error";
    case AL_ATT_RESET: return "reset";
    case AL_ATT_MALFORMED: return "malformed";
    case AL_ATT_DEADLINE: return "deadline";
    case AL_ATT_SKIP_BREAKER: return "skipped_breaker";
    case AL_ATT_SKIP_CONTEXT: return "skipped_context";
    case AL_ATT_CANCELLED: return "cancelled";
    case AL_ATT_SKIP_KILLED: return "skipped_killed";
    case AL_ATT_INVALID_OUTPUT: return "invalid_output";
    }
    return "unknown";
}

unsigned al_attempt_retry_class(al_attempt_outcome_t o)
{
    switch (o) {
    case AL_ATT_HTTP_429: return AL_RETRY_429;
    case AL_ATT_HTTP_5XX: return AL_RETRY_5XX;
    case AL_ATT_TIMEOUT: return AL_RETRY_TIMEOUT;
    case AL_ATT_CONNECT: return AL_RETRY_CONNECT;
    case AL_ATT_RESET:
    case AL_ATT_MALFORMED: return AL_RETRY_RESET; /* "reset" covers malformed answers */
    default: return 0;
    }
}

bool al_attempt_falls_back(al_attempt_outcome_t o)
{
    switch (o) {
    case AL_ATT_OK:
    case AL_ATT_HTTP_4XX:
    case AL_ATT_CANCELLED:
    case AL_ATT_DEADLINE:
    case AL_ATT_INVALID_OUTPUT:
        return false;
    case AL_ATT_HTTP_429:
    case AL_ATT_HTTP_5XX:
    case AL_ATT_HTTP_AUTH:
    case AL_ATT_HTTP_CONTEXT:
    case AL_ATT_TIMEOUT:
    case AL_ATT_CONNECT:
    case AL_ATT_RESET:
    case AL_ATT_MALFORMED:
    case AL_ATT_SKIP_BREAKER:
    case AL_ATT_SKIP_CONTEXT:
    case AL_ATT_SKIP_KILLED:
        return true;
    }
    return false;
}

bool al_attempt_breaker_failure(al_attempt_outcome_t o)
{
    switch (o) {
    case AL_ATT_HTTP_5XX:
    case AL_ATT_TIMEOUT:
    case AL_ATT_CONNECT:
    case AL_ATT_RESET:
    case AL_ATT_MALFORMED:
        return true;
    default:
        return false;
    }
}

/* --- order -------------------------------------------------------------- */

static uint64_t fast_rnd(void *ud)
{
    (void)ud;
    uint64_t v;
    al_fast_random(&v, sizeof v);
    return v;
}

/* Uniform in [0, 1) from the top 53 bits. */
static double unit(uint64_t v)
{
    return (double)(v >> 11) * (1.0 / 9007199254740992.0);
}

/* Moves v[k] to the front, keeping the others in their order. */
static void take(uint8_t *v, size_t k)
{
    uint8_t x = v[k];
    memmove(&v[1], &v[0], k);
    v[0] = x;
}

static void order_weighted(const al_route_t *route, uint8_t *h, size_t nh,
                           uint64_t (*rnd)(void *), void *ud)
{
    for (size_t i = 0; i + 1 < nh; i++) {
        uint64_t total = 0;
        for (size_t j = i; j < nh; j++) total += route->targets[h[j]].weight;
        if (total == 0) break; /* only zero weights left: keep configured order */
        uint64_t x = rnd(ud) % total;
        size_t k = i;
        for (; k < nh; k++) {
            uint32_t w = route->targets[h[k]].weight;
            if (x < w) break;
            x -= w;
        }
        if (k >= nh) k = nh - 1; /* unreachable: x < total */
        take(&h[i], k - i);
    }
}

static void order_latency(const al_route_t *route, uint8_t *h, size_t nh,
                          uint64_t (*rnd)(void *), void *ud)
{
    double lat[AL_ROUTE_MAX_TARGETS];
    for (size_t i = 0; i < nh; i++) lat[h[i]] = al_breaker_latency(route->targets[h[i]].breaker);
    /* Stable insertion sort: no sample (-1) first, then ascending EWMA. */
    for (size_t i = 1; i < nh; i++) {
        uint8_t x = h[i];
        size_t j = i;
        while (j > 0 && lat[h[j - 1]] > lat[x]) {
            h[j] = h[j - 1];
            j--;
        }
        h[j] = x;
    }
    if (nh > 1 && route->exploration > 0 && unit(rnd(ud)) < route->exploration)
        take(h, (size_t)(rnd(ud) % nh));
}

void al_route_order(const al_route_t *route, uint64_t now_ms, uint64_t (*rnd)(void *), void *rnd_ud,
                    uint8_t order[AL_ROUTE_MAX_TARGETS])
{
    uint8_t h[AL_ROUTE_MAX_TARGETS], o[AL_ROUTE_MAX_TARGETS];
    size_t nh = 0, no = 0;
    size_t n = route->n_targets < AL_ROUTE_MAX_TARGETS ? route->n_targets : AL_ROUTE_MAX_TARGETS;
    if (!rnd) rnd = fast_rnd;
    for (size_t i = 0; i < n; i++) {
        if (route->strategy != AL_STRATEGY_FALLBACK &&
            al_breaker_peek(route->targets[i].breaker, now_ms) == AL_BREAKER_OPEN)
            o[no++] = (uint8_t)i;
        else
            h[nh++] = (uint8_t)i;
    }
    if (route->strategy == AL_STRATEGY_WEIGHTED) order_weighted(route, h, nh, rnd, rnd_ud);
    else if (route->strategy == AL_STRATEGY_LATENCY) order_latency(route, h, nh, rnd, rnd_ud);
    memcpy(order, h, nh);
    memcpy(order + nh, o, no);
}

bool al_route_all_open(const al_route_t *route, uint64_t now_ms)
{
    if (!route || route->n_targets == 0) return false;
    for (size_t i = 0; i < route->n_targets; i++)
        if (al_breaker_peek(route->targets[i].breaker, now_ms) != AL_BREAKER_OPEN) return false;
    return true;
}

/* --- fit and backoff ---------------------------------------------------- */

bool al_route_fits(const al_model_t *m, uint64_t est_input_tokens, int64_t max_tokens)
{
    if (!m || m->context_window == 0) return true;
    /* Without max_tokens the provider stops at the window: only the
     * prompt has to fit (max_output_tokens caps output, it is not a floor). */
    uint64_t out = max_tokens >= 0 ? (uint64_t)max_tokens : 0;
    if (est_input_tokens > m->context_window) return false;
    return out <= m->context_window - est_input_tokens;
}

uint32_t al_route_backoff_ms(const al_retry_cfg_t *r, unsigned retry, uint64_t rnd)
{
    unsigned shift = retry ? retry - 1 : 0;
    uint64_t cap = r->backoff_cap_ms, ceil;
    /* base * 2^shift, without overflow: base < 2^32 so shift < 32 fits. */
    if (r->backoff_base_ms == 0) ceil = 0;
    else if (shift >= 32) ceil = cap;
    else ceil = AL_MIN((uint64_t)r->backoff_base_ms << shift, cap);
    return (uint32_t)(rnd % (ceil + 1));
}

/* --- Retry-After -------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "123" or "123.456" (unit = ms per unit of the number) to ms, capped at a
 * day; -1 on anything else. */
static int64_t parse_number(const char *p, size_t n, int64_t unit_ms)
{
    size_t i = 0;
    int64_t whole = 0, frac = 0, scale = unit_ms;
    if (n == 0 || !is_digit(p[0])) return -1;
    for (; i < n && is_digit(p[i]); i++)
        if (whole <= DAY_MS) whole = whole * 10 + (p[i] - '0');
    if (i < n) {
        if (p[i] != '.' || i + 1 == n) return -1;
        for (i++; i < n; i++) {
            if (!is_digit(p[i])) return -1;
            if (scale >= 10) {
                scale /= 10;
                frac += (p[i] - '0') * scale;
            }
        }
    }
    if (whole > DAY_MS / unit_ms) return DAY_MS;
    int64_t ms = whole * unit_ms + frac;
    return ms > DAY_MS ? DAY_MS : ms;
}

static int two_digits(const char *p)
{
    if (!is_digit(p[0]) || !is_digit(p[1])) return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int64_t days_before_year(int64_t y) /* days from 1970-01-01 to y-01-01 */
{
    int64_t n = y - 1;
    int64_t leaps = (n / 4 - n / 100 + n / 400) - (1969 / 4 - 1969 / 100 + 1969 / 400);
    return (y - 1970) * 365 + leaps;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 bytes, to unix
 * ms; false when malformed.  Names are matched case-insensitively (senders
 * are not always careful); the weekday is checked for form, not value. */
static bool parse_imf_fixdate(const char *p, size_t n, int64_t *out)
{
    static const char *const wk[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 29) return false;
    bool ok = false;
    for (size_t i = 0; i < 7 && !ok; i++) ok = al_mem_ieq(p, 3, wk[i], 3);
    if (!ok || memcmp(p + 3, ", ", 2) != 0 || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || p[25] != ' ' || !al_mem_ieq(p + 26, 3, "GMT", 3))
        return false;
    int m = -1;
    for (int i = 0; i < 12 && m < 0; i++)
        if (al_mem_ieq(p + 8, 3, mon[i], 3)) m = i;
    int d = two_digits(p + 5), hh = two_digits(p + 17), mm = two_digits(p + 20),
        ss = two_digits(p + 23), yh = two_digits(p + 12), yl = two_digits(p + 14);
    if (m < 0 || d < 1 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 ||
        yh < 0 || yl < 0)
        return false;
    int y = yh * 100 + yl;
    if (y < 1900) return false;
    if (d > mdays[m] + (m == 1 && leap(y))) return false;
    int64_t days = days_before_year(y);
    for (int i = 0; i < m; i++) days += mdays[i] + (i == 1 && leap(y));
    days += d - 1;
    *out = ((days * 24 + hh) * 60 + mm) * 60000LL + ss * 1000LL;
    return true;
}

int64_t al_route_retry_after_ms(const char *value, bool is_ms, int64_t now_wall_ms)
{
    if (!value) return -1;
    const char *p = value;
    size_t n = strlen(value);
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (n == 0) return -1;
    if (is_ms) return parse_number(p, n, 1);
    if (is_digit(p[0])) return parse_number(p, n, 1000);
    int64_t at;
    if (!parse_imf_fixdate(p, n, &at)) return -1;
    if (at <= now_wall_ms) return 0;
    int64_t d = at - now_wall_ms;
    return d > DAY_MS ? DAY_MS : d;
}
