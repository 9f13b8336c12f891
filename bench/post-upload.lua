-- wrk script: POST /uploads with a realistic body and an HS256 bearer token (TOKEN).
-- At the end prints one JSON line with the figures bench/load.sh reads.
wrk.method = "POST"
wrk.body = '{"filename":"holiday photo.jpg","content_type":"image/jpeg","size":2048576,"metadata":{"album":"2026"},"expires_in":120}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
