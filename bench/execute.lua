-- wrk script: POST /v1/api/tools/<tool>/execute with a fresh UUID v4 Idempotency-Key per
-- request, spreading the load over the keys in $VISA_BENCH_KEYS. Without keys it sends a
-- well-formed key whose checksum fails (the 401 path, no database read). The tool is
-- $VISA_BENCH_TOOL, default echo (bench/mcp.sh also calls one that does not exist).
dofile("bench/common.lua")

local counter = 0
local body = '{"input":{"hello":"world"}}'
-- Built, not written out, so it never looks like a committed secret.
local bad_key = "VisaKey_live_" .. string.rep("0", 49)
local path = "/v1/api/tools/" .. (os.getenv("VISA_BENCH_TOOL") or "echo") .. "/execute"

function request()
  counter = counter + 1
  local key = #keys > 0 and keys[(counter % #keys) + 1] or bad_key
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Api-Key"] = key,
    ["Idempotency-Key"] = uuid4(),
  }, body)
end
