/* simprov.c - timers that play the simulated model: wait latency (+ jitter),
 * then either deliver the whole JSON body or one SSE chunk per interval,
 * the usage chunk and [DONE].  A pause stops the chunk timer; resuming
 * re-arms it. */
#include "upstream/simprov.h"
#include "upstream/simulated.h"

#include <stdlib.h>
#include <string.h>

struct al_simx {
    uv_timer_t timer;
    al_xfer_cbs_t cbs;
    void *ud;
    al_sim_reply_t reply;
    al_sim_kind_t kind;
    al_sim_params_t p;
    bool stream;
    bool paused;
    bool cancelled;
    unsigned next;          /* next chunk index; chunks, then usage, then DONE */
    char model[AL_UPSTREAM_MODEL_MAX + 1];
    al_buf_t out;
    al_buf_t pre;           /* embeddings body, built at start */
};

static void on_close(uv_handle_t *h)
{
    al_simx_t *x = h->data;
    al_buf_free(&x->out);
    al_buf_free(&x->pre);
    free(x);
}

static void finish(al_simx_t *x)
{
    uv_timer_stop(&x->timer);
    x->cbs.on_done(x->ud, AL_UP_OK, NULL);
    if (!x->cancelled) {
        x->cancelled = true;
        uv_close((uv_handle_t *)&x->timer, on_close);
    }
}

/* Hand bytes to the consumer: its on_data result, or -1 when the transfer
 * is over (cancelled by the consumer, or refused: then on_done has run). */
static int deliver(al_simx_t *x)
{
    int rc = x->cbs.on_data(x->ud, x->out.p, x->out.len);
    if (x->cancelled) return -1;
    if (rc < 0) {
        x->cbs.on_done(x->ud, AL_UP_TOO_BIG, "consumer refused data");
        x->cancelled = true;
        uv_close((uv_handle_t *)&x->timer, on_close);
        return -1;
    }
    return rc;
}

static void on_tick(uv_timer_t *t)
{
    al_simx_t *x = t->data;
    if (x->cancelled || x->paused) return;
    unsigned n = x->p.chunks ? x->p.chunks : 1;
    al_buf_reset(&x->out);
    if (x->next == 0 && !x->stream) {
        x->cbs.on_head(x->ud, 200, "application/json", NULL);
        if (x->cancelled) return;
        if (x->kind == AL_SIM_EMBEDDINGS) al_buf_append(&x->out, x->pre.p, x->pre.len);
        else al_sim_chat_json(&x->reply, x->model, true, &x->out);
        x->next = 1;
        if (deliver(x) >= 0) finish(x);
        return;
    }
    if (x->next == 0) {
        x->cbs.on_head(x->ud, 200, "text/event-stream", NULL);
        if (x->cancelled) return;
    }
    if (x->next < n) {
        al_buf_puts(&x->out, "data: ");
        al_sim_chat_chunk_json(&x->reply, x->model, x->next, n, &x->out);
        al_buf_puts(&x->out, "\n\n");
    } else if (x->next == n) {
        al_buf_puts(&x->out, "data: ");
        al_sim_usage_chunk_json(&x->reply, x->model, &x->out);
        al_buf_puts(&x->out, "\n\ndata: [DONE]\n\n");
    }
    x->next++;
    int rc = deliver(x);
    if (rc < 0) return;
    if (x->next > n) {
        finish(x);
        return;
    }
    if (rc == 1) x->paused = true;
    if (!x->paused) uv_timer_start(&x->timer, on_tick, x->p.chunk_interval_ms, 0);
}

int al_simx_start(uv_loop_t *loop, const al_sim_params_t *p, al_sim_kind_t kind,
                  const al_chatreq_t *rq, const char *body, size_t len, const char *model,
                  const al_xfer_cbs_t *cbs, void *ud, al_simx_t **out)
{
    al_simx_t *x = al_calloc(1, sizeof *x);
    x->cbs = *cbs;
    x->ud = ud;
    x->p = *p;
    x->kind = kind;
    x->stream = kind == AL_SIM_CHAT && rq->stream;
    al_buf_init(&x->out, 64 * 1024 * 1024);
    al_buf_init(&x->pre, 64 * 1024 * 1024);
    size_t ml = strlen(model);
    if (ml > AL_UPSTREAM_MODEL_MAX) ml = AL_UPSTREAM_MODEL_MAX;
    memcpy(x->model, model, ml);
    x->model[ml] = '\0';
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    uint64_t delay = p->latency_ms;
    if (p->jitter_ms) {
        uint32_t r;
        al_fast_random(&r, sizeof r);
        delay += r % (p->jitter_ms + 1);
    }
    if (kind == AL_SIM_EMBEDDINGS) {
        /* Embeddings answer in one piece; build the body now. */
        al_sim_embeddings_json(rq, body, len, x->model, 0, &x->pre);
        x->stream = false;
        x->next = 0;
    } else {
        al_sim_plan(rq, p, &x->reply);
    }
    uv_timer_start(&x->timer, on_tick, delay, 0);
    *out = x;
    return AL_OK;
}

void al_simx_pause(al_simx_t *x, bool pause)
{
    if (x->cancelled) return;
    if (pause) {
        x->paused = true;
        return;
    }
    if (x->paused) {
        x->paused = false;
        uv_timer_start(&x->timer, on_tick, 0, 0);
    }
}

void al_simx_cancel(al_simx_t *x)
{
    if (x->cancelled) return;
    x->cancelled = true;
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, on_close);
}
