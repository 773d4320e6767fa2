-- wrk script: an MCP `tools/list` at the newest revision (no session), with the keys in
-- $VISA_BENCH_KEYS (each allowed one tool): the key's check and rmcp's handling of one request,
-- without the money path (bench/mcp.sh uses it for what MCP itself costs per request).
dofile("bench/common.lua")

function request()
  return mcp_request("tools/list", "", "", nil)
end
