-- post.lua - wrk script: POST a chat request body on every request.
-- BENCH_BODY names the JSON body file (bench/request.json or the streaming
-- variant); BENCH_KEY, when set, is sent as "Authorization: Bearer <key>".
-- The body is read once per wrk thread at startup, so the hot loop only
-- sends the pre-built request (no response() hook, which would slow wrk).
local path = os.getenv("BENCH_BODY") or "bench/request.json"
local f = assert(io.open(path, "rb"), "cannot open " .. path)
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
