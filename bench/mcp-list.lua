-- wrk script: an MCP `tools/list` at the newest revision (no session), with the keys in
-- $VISA_BENCH_KEYS (each allowed one tool): the key's check and rmcp's handling of one request,
-- without the money path (bench/mcp.sh uses it for what MCP itself costs per request).
dofile("bench/common.lua")

local counter = 0

function request()
  counter = counter + 1
  local key = keys[(counter % #keys) + 1]
  local body = '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"tools/list","params":{"_meta":{' ..
    '"io.modelcontextprotocol/protocolVersion":"2026-07-28",' ..
    '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},' ..
    '"io.modelcontextprotocol/clientCapabilities":{}}}}'
  return wrk.format("POST", "/v1/mcp", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer " .. key,
    ["MCP-Protocol-Version"] = "2026-07-28",
    ["Mcp-Method"] = "tools/list",
  }, body)
end
