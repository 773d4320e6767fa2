-- wrk script: wrong-password sign-ins (POST /v1/api/sessions) for the login in
-- $VISA_BENCH_LOGIN; counts how they were answered (401 checked, 429 throttled, 503 no turn).
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answered = { [401] = 0, [429] = 0, [503] = 0, other = 0 }
  login = os.getenv("VISA_BENCH_LOGIN") or "bench"
end

function request()
  counter = counter + 1
  local body = string.format('{"login":"%s","password":"wrong-password-%d"}', login, counter)
  return wrk.format("POST", "/v1/api/sessions", { ["Content-Type"] = "application/json" }, body)
end

function response(status)
  local slot = answered[status] and status or "other"
  answered[slot] = answered[slot] + 1
end

function done(summary, latency, requests)
  local totals = { [401] = 0, [429] = 0, [503] = 0, other = 0 }
  for _, thread in ipairs(threads) do
    local counts = thread:get("answered")
    for k, v in pairs(counts) do totals[k] = totals[k] + v end
  end
  io.write(string.format("RESULT req_per_s=%.0f p99_ms=%.2f checked_401=%d throttled_429=%d no_turn_503=%d other=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    totals[401], totals[429], totals[503], totals.other))
end
