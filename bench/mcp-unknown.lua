-- wrk script: an MCP `tools/call` the same size as bench/mcp.lua's, of a tool that does not
-- exist: rmcp's whole `tools/call` path and our key check, refused before any money moves
-- (bench/mcp.sh: the floor of a paid call over MCP on rmcp).
dofile("bench/common.lua")

function request()
  return mcp_request("tools/call", '"name":"ecko","arguments":{"hello":"world"},',
    ',"dev.visakeys/idempotency_key":"' .. uuid4() .. '"', "ecko")
end
