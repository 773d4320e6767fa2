-- wrk script for the openai_chat benchmark. With $VISA_BENCH_KEYS it sends paid executions of
-- the `bench-chat` tool (fresh UUID v4 Idempotency-Key each, keys round-robin); without it,
-- the same chat request straight to the mock provider.
dofile("bench/common.lua")

local counter = 0
local chat = '{"messages":[{"role":"user","content":"Say hello in one sentence."}],"max_tokens":16}'

function request()
  if #keys == 0 then
    return wrk.format("POST", "/v1/chat/completions", { ["Content-Type"] = "application/json" }, chat)
  end
  counter = counter + 1
  return wrk.format("POST", "/v1/api/tools/bench-chat/execute", {
    ["Content-Type"] = "application/json",
    ["X-Api-Key"] = keys[(counter % #keys) + 1],
    ["Idempotency-Key"] = uuid4(),
  }, '{"input":' .. chat .. '}')
end
