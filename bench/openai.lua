-- wrk script for the OpenAI-compatible surface: POST /v1/openai/chat/completions with a fresh
-- Idempotency-Key each (keys round-robin from $VISA_BENCH_KEYS); $VISA_BENCH_STREAM=1 streams.
dofile("bench/common.lua")

local counter = 0
local stream = os.getenv("VISA_BENCH_STREAM") == "1"
local chat = '{"model":"bench-chat","messages":[{"role":"user","content":"Say hello in one sentence."}],"max_tokens":16'
  .. (stream and ',"stream":true}' or '}')

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/openai/chat/completions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. keys[(counter % #keys) + 1],
    ["Idempotency-Key"] = uuid4(),
  }, chat)
end
