-- Shared by the wrk scripts: a UUID v4 generator, per-thread seeding, the keys file
-- ($VISA_BENCH_KEYS, one key per line) and the RESULT line that the bench scripts parse.

keys = {}

function uuid4()
  local function hex(n) return string.format("%0" .. n .. "x", math.random(0, 16 ^ n - 1)) end
  return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-" ..
    string.format("%x", math.random(8, 11)) .. hex(3) .. "-" .. hex(6) .. hex(6)
end

local thread_counter = 0
function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
end

function init(args)
  -- Seeded from the kernel: wrk processes started in the same second (bench/pg.sh runs one
  -- per node) must not generate the same Idempotency-Keys.
  local urandom = io.open("/dev/urandom", "rb")
  local seed = 0
  for byte in urandom:read(6):gmatch(".") do seed = seed * 256 + byte:byte() end
  urandom:close()
  math.randomseed(seed + (thread_id or 0))
  local path = os.getenv("VISA_BENCH_KEYS")
  if path and #path > 0 then
    for line in io.lines(path) do
      if #line > 0 then keys[#keys + 1] = line end
    end
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non_2xx_or_errors=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, errors))
end

-- An MCP request at the newest revision (2026-07-28: no session, the protocol's metadata in
-- every request's `_meta`), as bench/mcp.lua and bench/mcp-list.lua send it. `params` is the
-- JSON of the request's other params, ending with a comma when not empty; `meta` the JSON of
-- extra `_meta` members, starting with a comma when not empty; `name` the `Mcp-Name` header.
mcp_counter = 0
function mcp_request(method, params, meta, name)
  mcp_counter = mcp_counter + 1
  local key = keys[(mcp_counter % #keys) + 1]
  local body = '{"jsonrpc":"2.0","id":' .. mcp_counter .. ',"method":"' .. method .. '","params":{' .. params ..
    '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",' ..
    '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},' ..
    '"io.modelcontextprotocol/clientCapabilities":{}' .. meta .. '}}}'
  return wrk.format("POST", "/v1/mcp", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer " .. key,
    ["MCP-Protocol-Version"] = "2026-07-28",
    ["Mcp-Method"] = method,
    ["Mcp-Name"] = name,
  }, body)
end
