-- wrk script: POST /uploads with a realistic body and an HS256 bearer token (TOKEN).
-- At the end prints one JSON line with the figures bench/load.sh reads.
wrk.method = "POST"
wrk.body = '{"filename":"holiday photo.jpg","content_type":"image/jpeg","size":2048576,"metadata":{"album":"2026"},"expires_in":120}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

-- With TOKENS_FILE (one token a line), every request sends the next token of the file,
-- each thread from its own half of it: tokens the server has never seen. Without it the
-- request stays static (wrk's fast path).
if os.getenv("TOKENS_FILE") then
  local started = 0
  setup = function(thread)
    thread:set("offset", started)
    started = started + 1
  end
  init = function()
    tokens = {}
    for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
    next_token = 1 + math.floor(#tokens / 2) * offset
  end
  request = function()
    local token = tokens[next_token]
    next_token = next_token % #tokens + 1
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" })
  end
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
