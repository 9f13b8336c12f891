#!/usr/bin/env bash
# Soak: upload-tickets (release build, bench/bench.toml) under a mix of valid and invalid
# POST /uploads at 64 connections for 60 s on 127.0.0.1, in back-to-back windows. Reports
# per window the statuses, p99 and the server's RSS, then the verdict: no unexpected
# status, no socket error, and no growth of RSS or p99 from the first window to the last
# beyond noise. A benchmark, not a test: it measures and stops by itself.
#
# Usage: bench/soak.sh [SECONDS] [CONNECTIONS] [WINDOWS]   (defaults: 60, 64, 6)
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-60}"
connections="${2:-64}"
windows="${3:-6}"
window=$(( duration / windows ))
port=18080

source bench/common.sh
bench_prepare

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

TOKEN=$(bench_token uploads:write 7200)
EXPIRED_TOKEN=$(bench_token uploads:write -3600)
NO_SCOPE_TOKEN=$(bench_token profile 7200)
export TOKEN EXPIRED_TOKEN NO_SCOPE_TOKEN

env AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
  AWS_EC2_METADATA_DISABLED=true RUST_LOG="${RUST_LOG:-info}" \
  target/release/upload-tickets serve --config bench/bench.toml >/dev/null 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "{\"window\":0,\"rss_kib\":$(rss)}" >"$work/windows.jsonl"
for w in $(seq 1 "$windows"); do
  line=$(wrk -t2 -c"$connections" -d"${window}s" --timeout 5s -s bench/soak.lua "http://127.0.0.1:$port/uploads" | tail -n 1)
  echo "{\"window\":$w,\"rss_kib\":$(rss),\"wrk\":$line}" | tee -a "$work/windows.jsonl" >&2
done
kill -0 "$pid" # still alive

node -e '
  const fs = require("fs"), os = require("os");
  const [file, connections, duration] = process.argv.slice(1);
  const rows = fs.readFileSync(file, "utf8").trim().split("\n").map(JSON.parse);
  const expected = new Set(["201", "400", "401", "403", "422"]);
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ${new Date().toISOString()}; soak ${duration} s, wrk -t2 -c${connections}, 127.0.0.1`);
  console.log(`before load: RSS ${(rows[0].rss_kib / 1024).toFixed(1)} MiB`);
  let unexpected = 0, socket = 0, total = 0;
  for (const r of rows.slice(1)) {
    const s = r.wrk.statuses;
    const odd = Object.entries(s).filter(([k]) => !expected.has(k)).reduce((a, [, n]) => a + n, 0);
    unexpected += odd; socket += r.wrk.socket_errors; total += r.wrk.requests;
    console.log(`window ${r.window}: ${r.wrk.rps.toFixed(0).padStart(6)} req/s  p99 ${r.wrk.p99_ms.toFixed(2).padStart(6)} ms  RSS ${(r.rss_kib / 1024).toFixed(1).padStart(5)} MiB  statuses ${JSON.stringify(s)}`);
  }
  const first = rows[1], last = rows[rows.length - 1];
  // Noise bands: RSS may move by 10 % + 2 MiB (allocator caching), p99 by 1.5x (shared host).
  const rssGrew = last.rss_kib > first.rss_kib * 1.1 + 2048;
  const p99Grew = last.wrk.p99_ms > first.wrk.p99_ms * 1.5;
  console.log(`total ${total} requests; unexpected statuses ${unexpected}; socket errors ${socket}; RSS first->last window ${(first.rss_kib / 1024).toFixed(1)} -> ${(last.rss_kib / 1024).toFixed(1)} MiB; p99 ${first.wrk.p99_ms.toFixed(2)} -> ${last.wrk.p99_ms.toFixed(2)} ms`);
  const ok = unexpected === 0 && socket === 0 && !rssGrew && !p99Grew;
  console.log(`verdict: ${ok ? "steady (0 unexpected, no growth)" : "NOT steady"}`);
  process.exitCode = ok ? 0 : 1;
' "$work/windows.jsonl" "$connections" "$duration"
