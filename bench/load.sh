#!/usr/bin/env bash
# POST /uploads under load, in ONE run on this machine with the same load generator (wrk),
# for three servers:
#   1. upload-tickets (release build, the real path: JWT verify + tenant rules + signing)
#   2. a bare axum handler answering a fixed JSON of a ticket's size (the HTTP ceiling)
#   3. a Node peer: Express + jsonwebtoken + @aws-sdk/s3-presigned-post, same job
# Prints requests/s, p50/p99 latency, peak RSS and server CPU per request of each, and the
# ratios 1/2 and 1/3.
# Only 127.0.0.1 is targeted; every load run is bounded in time; every server this script
# starts is stopped by its PID when it ends, also on failure.
#
# Usage: bench/load.sh [SECONDS] [CONNECTIONS]     (defaults: 10 s, 64 connections)
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-10}"
connections="${2:-64}"
threads=2
ours_port=18080 ceiling_port=18081 node_port=18082

source bench/common.sh
bench_prepare
cargo build --release --manifest-path bench/ceiling/Cargo.toml --target-dir target >&2

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

TOKEN=$(bench_token uploads:write 3600)
export TOKEN

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# run NAME PORT -- COMMAND...: start, warm up, measure, record peak RSS, stop.
run() {
  local name=$1 port=$2
  shift 3
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  wait_for_port "$port"
  # One request first: it must succeed, or the figures would measure errors.
  local status
  status=$(curl -s -o "$work/$name.ticket" -w '%{http_code}' -X POST "http://127.0.0.1:$port/uploads" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"filename":"holiday photo.jpg","content_type":"image/jpeg","size":2048576,"metadata":{"album":"2026"},"expires_in":120}')
  [ "$status" = 201 ] || { echo "$name answered $status: $(cat "$work/$name.ticket")" >&2; exit 1; }
  wrk -t"$threads" -c"$connections" -d2s -s bench/post-upload.lua "http://127.0.0.1:$port/uploads" >/dev/null
  # The server's CPU time over the measured run (user and kernel, clock ticks): what a
  # request costs it, whatever the load generator takes of the same cores.
  local cpu_before cpu_after
  cpu_before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 5s -s bench/post-upload.lua \
    "http://127.0.0.1:$port/uploads" | tail -n 1 >"$work/$name.json"
  cpu_after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local rss_kib
  rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    r.rss_mib = Number(process.argv[2]) / 1024; r.ticket_bytes = Number(process.argv[3]);
    r.cpu_us_per_request = (Number(process.argv[4]) / Number(process.argv[5])) * 1e6 / r.requests;
    require("fs").writeFileSync(process.argv[1], JSON.stringify(r));' \
    "$work/$name.json" "$rss_kib" "$(wc -c <"$work/$name.ticket")" "$((cpu_after - cpu_before))" "$(getconf CLK_TCK)"
  echo "== $name: $(cat "$work/$name.json")" >&2
}

echo "== upload-tickets" >&2
run ours "$ours_port" -- env AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_EC2_METADATA_DISABLED=true \
  RUST_LOG="${RUST_LOG:-info}" target/release/upload-tickets serve --config bench/bench.toml
echo "== bare axum ceiling" >&2
run ceiling "$ceiling_port" -- target/release/upload-tickets-ceiling "127.0.0.1:$ceiling_port"
echo "== Node peer" >&2
run node "$node_port" -- node "$peer/server.mjs" 127.0.0.1 "$node_port"

node -e '
  const fs = require("fs"), os = require("os");
  const [dir, duration, connections] = process.argv.slice(1);
  const r = Object.fromEntries(["ours", "ceiling", "node"].map((n) => [n, JSON.parse(fs.readFileSync(`${dir}/${n}.json`, "utf8"))]));
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ${new Date().toISOString()}; wrk -t2 -c${connections} -d${duration}s on 127.0.0.1`);
  const row = (name, x) => console.log(
    `${name.padEnd(28)} ${x.rps.toFixed(0).padStart(8)} req/s  p50 ${x.p50_ms.toFixed(2).padStart(7)} ms  p99 ${x.p99_ms.toFixed(2).padStart(7)} ms  RSS ${x.rss_mib.toFixed(1).padStart(6)} MiB  CPU ${x.cpu_us_per_request.toFixed(1).padStart(6)} us/req  errors ${x.errors + x.non_2xx}  body ${x.ticket_bytes} B`);
  row("upload-tickets", r.ours); row("bare axum (ceiling)", r.ceiling); row("Express + seed (Node peer)", r.node);
  const vsCeiling = r.ours.rps / r.ceiling.rps, vsNode = r.ours.rps / r.node.rps, p99 = r.ours.p99_ms / r.ceiling.p99_ms;
  console.log(`ratios: ours/ceiling ${vsCeiling.toFixed(2)}x (target >= 0.8), ours/node ${vsNode.toFixed(1)}x (target >= 15), p99 ours/ceiling ${p99.toFixed(2)}x (target <= 1.5), peak RSS ${r.ours.rss_mib.toFixed(1)} MiB (target <= 20)`);
  const met = vsCeiling >= 0.8 && vsNode >= 15 && p99 <= 1.5 && r.ours.rss_mib <= 20 && r.ours.errors + r.ours.non_2xx === 0;
  console.log(`targets: ${met ? "all met" : "NOT all met"}`);
' "$work" "$duration" "$connections"
