-- wrk script: an MCP `tools/call` of `echo` at the newest revision (2026-07-28: no session, the
-- protocol's metadata on every request), a fresh `dev.visakeys/idempotency_key` per request,
-- spreading the load over the keys in $VISA_BENCH_KEYS (bench/mcp.sh).
dofile("bench/common.lua")

local counter = 0

function request()
  counter = counter + 1
  local key = keys[(counter % #keys) + 1]
  local body = '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"tools/call","params":{"name":"echo",' ..
    '"arguments":{"hello":"world"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",' ..
    '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},' ..
    '"io.modelcontextprotocol/clientCapabilities":{},"dev.visakeys/idempotency_key":"' .. uuid4() .. '"}}}'
  return wrk.format("POST", "/v1/mcp", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer " .. key,
    ["MCP-Protocol-Version"] = "2026-07-28",
    ["Mcp-Method"] = "tools/call",
    ["Mcp-Name"] = "echo",
  }, body)
end
