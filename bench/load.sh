#!/usr/bin/env bash
# POST /uploads under load, in ONE run on this machine with the same load generator (wrk),
# for three servers:
#   1. upload-tickets (release build, the real path: JWT verify + tenant rules + signing)
#   2. a bare axum handler answering a fixed JSON of a ticket's size (the HTTP ceiling)
#   3. a Node peer: Express + jsonwebtoken + @aws-sdk/s3-presigned-post, same job
# Prints requests/s, p50/p99 latency, peak RSS and server CPU per request of each, and the
# ratios 1/2 and 1/3; the CPU target is a ticket's server CPU at most 2x the ceiling's per
# request. For A/B decisions between builds use bench/ab.sh (alternating rounds); for the
# cost of limits (none, in process, Redis) bench/limits.sh, the same load.
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
bench_ceiling
bench_workspace
TOKEN=$(bench_token uploads:write 3600)
export TOKEN

echo "== upload-tickets" >&2
bench_run ours "$ours_port" -- "${bench_ours_env[@]}" target/release/upload-tickets serve --config bench/bench.toml
echo "== bare axum ceiling" >&2
bench_run ceiling "$ceiling_port" -- target/release/upload-tickets-ceiling "127.0.0.1:$ceiling_port"
echo "== Node peer" >&2
bench_run node "$node_port" -- node "$peer/server.mjs" 127.0.0.1 "$node_port"

node -e '
  const fs = require("fs"), os = require("os");
  const [dir, duration, connections] = process.argv.slice(1);
  const r = Object.fromEntries(["ours", "ceiling", "node"].map((n) => [n, JSON.parse(fs.readFileSync(`${dir}/${n}.json`, "utf8"))]));
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ${new Date().toISOString()}; wrk -t2 -c${connections} -d${duration}s on 127.0.0.1`);
  const row = (name, x) => console.log(
    `${name.padEnd(28)} ${x.rps.toFixed(0).padStart(8)} req/s  p50 ${x.p50_ms.toFixed(2).padStart(7)} ms  p99 ${x.p99_ms.toFixed(2).padStart(7)} ms  RSS ${x.rss_mib.toFixed(1).padStart(6)} MiB  CPU ${x.cpu_us_per_request.toFixed(1).padStart(6)} us/req  errors ${x.errors + x.non_2xx}  body ${x.ticket_bytes} B`);
  row("upload-tickets", r.ours); row("bare axum (ceiling)", r.ceiling); row("Express + seed (Node peer)", r.node);
  const cpu = r.ours.cpu_us_per_request / r.ceiling.cpu_us_per_request, vsCeiling = r.ours.rps / r.ceiling.rps;
  const vsNode = r.ours.rps / r.node.rps, p99 = r.ours.p99_ms / r.ceiling.p99_ms;
  console.log(`ratios: CPU per ticket ours/ceiling ${cpu.toFixed(2)}x (target <= 2), req/s ours/ceiling ${vsCeiling.toFixed(2)}x, ours/node ${vsNode.toFixed(1)}x (target >= 15), p99 ours/ceiling ${p99.toFixed(2)}x (target <= 1.5), peak RSS ${r.ours.rss_mib.toFixed(1)} MiB (target <= 20)`);
  const met = cpu <= 2 && vsNode >= 15 && p99 <= 1.5 && r.ours.rss_mib <= 20 && r.ours.errors + r.ours.non_2xx === 0;
  console.log(`targets: ${met ? "all met" : "NOT all met"}`);
' "$work" "$duration" "$connections"
