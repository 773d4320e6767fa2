-- wrk script: an MCP `tools/call` of `echo` at the newest revision (no session), a fresh
-- `dev.visakeys/idempotency_key` per request, spreading the load over the keys in
-- $VISA_BENCH_KEYS (bench/mcp.sh).
dofile("bench/common.lua")

function request()
  return mcp_request("tools/call", '"name":"echo","arguments":{"hello":"world"},',
    ',"dev.visakeys/idempotency_key":"' .. uuid4() .. '"', "echo")
end
