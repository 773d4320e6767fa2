-- wrk script: a signed-in member reading GET /v1/api/balance with the session in
-- $VISA_BENCH_SESSION (what the sign-in flood must not slow down).
dofile("bench/common.lua")

function request()
  return wrk.format("GET", "/v1/api/balance", { ["Authorization"] = "Bearer " .. os.getenv("VISA_BENCH_SESSION") })
end
