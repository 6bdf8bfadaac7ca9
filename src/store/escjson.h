/* escjson.h - an escalation as JSON, one shape for the agent API
 * (GET /v1/escalations/ID), the admin API and `airlock escalations --json`,
 * and the chat completion a person's answer becomes. */
#ifndef AL_ESCJSON_H
#define AL_ESCJSON_H

#include "store/store.h"
#include "util/common.h"

/* {"id","object":"escalation","status","reason","created_at","resolved_at",
 * "answer","completion","expires_at","agent","route","model","request_id",
 * "mode","stream","attempts"} plus, for admin, "key_id", "event_id",
 * "resolved_by", and "request" when with_request.  Times are unix seconds;
 * attempts is the stored array when it is valid JSON, else [].  Appends to
 * b without a newline; 0 or AL_ETOOBIG. */
int al_esc_json(al_buf_t *b, const al_esc_row_t *r, bool admin, bool with_request);

/* The chat completion (model "human", finish_reason stop, zero usage) that
 * carries a person's answer. */
void al_esc_completion_json(al_buf_t *b, const char *esc_id, const char *answer, int64_t created_s);

#endif
