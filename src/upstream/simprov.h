/* simprov.h - the in-process `simulated` provider: the simulated model
 * (simulated.h) played out over time on the worker's loop, reporting through
 * the same callbacks as a real upstream transfer (upstream.h), so the relay
 * path is the same for both.  Streams are produced as SSE bytes, always with
 * a final usage chunk (the gateway strips it when the client did not ask). */
#ifndef AL_SIMPROV_H
#define AL_SIMPROV_H

#include "config/config.h"
#include "pipeline/chatreq.h"
#include "upstream/upstream.h"
#include <uv.h>

typedef struct al_simx al_simx_t;

typedef enum { AL_SIM_CHAT, AL_SIM_EMBEDDINGS } al_sim_kind_t;

/* Start a simulated transfer.  The request is copied as needed; callbacks
 * follow from timers on loop, never from inside this call. */
int al_simx_start(uv_loop_t *loop, const al_sim_params_t *p, al_sim_kind_t kind,
                  const al_chatreq_t *rq, const char *body, size_t len,
                  const char *model, const al_xfer_cbs_t *cbs, void *ud,
                  al_simx_t **out /* OUT */);
void al_simx_pause(al_simx_t *x, bool pause);
/* Stop now; no callback runs after. */
void al_simx_cancel(al_simx_t *x);

#endif
