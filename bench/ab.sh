#!/usr/bin/env bash
# A/B under the load of bench/load.sh: two or more builds (or settings) of upload-tickets,
# each run alternately with the bare axum ceiling and the Rust peer (bench/rust-peer) in
# every round, so that the host's drift falls on all of them alike. Reports per variant the
# medians over the rounds of req/s, p99 and server CPU per request, its peak RSS, and the
# ratios that decide: CPU per ticket over the ceiling's CPU per request and over the Rust
# peer's (same round), and over the first variant's.
#
# Usage: bench/ab.sh ROUNDS SECONDS LABEL=BINARY[,VAR=VALUE...] [LABEL=BINARY...]
#   e.g. bench/ab.sh 3 8 before=/tmp/before/upload-tickets after=target/release/upload-tickets
# The binaries are built by the caller (release profile); the ceiling is built here.
# Only 127.0.0.1 is targeted; every server started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=$1 duration=$2
shift 2

source bench/common.sh
bench_alternating

labels=()
for round in $(seq 1 "$rounds"); do
  for variant in "$@"; do
    label=${variant%%=*} spec=${variant#*=}
    binary=${spec%%,*} vars=()
    if [ "$spec" != "$binary" ]; then IFS=, read -r -a vars <<<"${spec#*,}"; fi
    [ "$round" = 1 ] && labels+=("$label")
    echo "== round $round: $label" >&2
    bench_run "$label.$round" "$port" -- "${bench_ours_env[@]}" "${vars[@]}" \
      "$binary" serve --config bench/bench.toml
  done
  echo "== round $round: ceiling" >&2
  bench_run "ceiling.$round" "$ceiling_port" -- target/release/upload-tickets-ceiling "127.0.0.1:$ceiling_port"
  echo "== round $round: rust-peer" >&2
  bench_run "rust-peer.$round" "$rust_peer_port" -- env BENCH_JWT_SECRET="$BENCH_JWT_SECRET" \
    target/release/upload-tickets-rust-peer "127.0.0.1:$rust_peer_port"
done

node -e '
  const fs = require("fs"), os = require("os");
  const [dir, rounds, duration, ...labels] = process.argv.slice(1);
  const read = (n, r) => JSON.parse(fs.readFileSync(`${dir}/${n}.${r}.json`, "utf8"));
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  const rs = [...Array(Number(rounds)).keys()].map((i) => i + 1);
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ${new Date().toISOString()}; ${rounds} rounds of wrk -t2 -c64 -d${duration}s on 127.0.0.1, variants alternating`);
  for (const name of [...labels, "rust-peer", "ceiling"]) {
    const runs = rs.map((r) => read(name, r));
    const vsCeiling = rs.map((r) => read(name, r).cpu_us_per_request / read("ceiling", r).cpu_us_per_request);
    const vsPeer = rs.map((r) => read(name, r).cpu_us_per_request / read("rust-peer", r).cpu_us_per_request);
    const vsFirst = rs.map((r) => read(name, r).cpu_us_per_request / read(labels[0], r).cpu_us_per_request);
    const errors = runs.reduce((n, x) => n + x.errors + x.non_2xx, 0);
    console.log(`${name.padEnd(16)} ${median(runs.map((x) => x.rps)).toFixed(0).padStart(8)} req/s  p99 ${median(runs.map((x) => x.p99_ms)).toFixed(2).padStart(6)} ms  RSS ${Math.max(...runs.map((x) => x.rss_mib)).toFixed(1).padStart(5)} MiB  CPU ${median(runs.map((x) => x.cpu_us_per_request)).toFixed(1).padStart(5)} us/req  CPU/ceiling ${median(vsCeiling).toFixed(2)}x [${vsCeiling.map((x) => x.toFixed(2)).join(" ")}]  CPU/rust-peer ${median(vsPeer).toFixed(3)}x [${vsPeer.map((x) => x.toFixed(3)).join(" ")}]  CPU/${labels[0]} ${median(vsFirst).toFixed(3)}x [${vsFirst.map((x) => x.toFixed(3)).join(" ")}]  errors ${errors}`);
  }
' "$work" "$rounds" "$duration" "${labels[@]}"
