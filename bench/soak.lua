-- wrk script for bench/soak.sh: a mix of valid and invalid POST /uploads, one kind per
-- request in turn. Each kind has its own expected status, so the counts per status show
-- both unexpected answers and lost ones. Prints one JSON line at the end.
local good = '{"filename":"holiday photo.jpg","content_type":"image/jpeg","size":2048576,"metadata":{"album":"2026"},"expires_in":120}'
local kinds = {
  { token = os.getenv("TOKEN"), body = good },                                                   -- 201
  { token = os.getenv("TOKEN"), body = good },                                                   -- 201
  { token = os.getenv("EXPIRED_TOKEN"), body = good },                                           -- 401
  { token = os.getenv("NO_SCOPE_TOKEN"), body = good },                                          -- 403
  { token = os.getenv("TOKEN"), body = '{"filename":"a.exe","content_type":"application/x-msdownload"}' }, -- 422
  { token = os.getenv("TOKEN"), body = '{"filename":"a.pdf","size":' },                           -- 400
}
local requests = {}
for i, kind in ipairs(kinds) do
  requests[i] = wrk.format("POST", "/uploads", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. kind.token,
  }, kind.body)
end

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end

local next_kind = 0
statuses = {}  -- global: done() reads it from each thread
init = function()
  next_kind = math.random(#requests) - 1
end
request = function()
  next_kind = next_kind % #requests + 1
  return requests[next_kind]
end
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses") or {}
    for status, n in pairs(s) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"socket_errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ",")))
end
