#!/usr/bin/env bash
# What a server's own work per request costs it under the load of bench/load.sh: the bare
# axum ceiling made to spin a fixed amount of pure user-space work per request (none, then
# each WORK_US), and upload-tickets, in alternating rounds with the same wrk load. Reports
# per variant the medians of req/s and server CPU per request, CPU over the plain
# ceiling's (same round), and the kernel's surcharge on the work; then the work a request
# may do and still stay within 2x the ceiling's CPU, and the work upload-tickets' CPU
# corresponds to (both interpolated between the measured points).
# Only 127.0.0.1 is targeted; every server started is stopped by its PID.
#
# Usage: bench/amplification.sh [ROUNDS] [SECONDS] [BINARY] [WORK_US...]
#   (defaults: 3, 8, target/release/upload-tickets, 2.5 5 10 20)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}" duration="${2:-8}" binary="${3:-target/release/upload-tickets}"
shift $(($# < 3 ? $# : 3))
works=("$@")
[ ${#works[@]} -gt 0 ] || works=(2.5 5 10 20)
[ -x "$binary" ] || { echo "$binary: no release build (cargo build --release)" >&2; exit 1; }

source bench/common.sh
bench_alternating

for round in $(seq 1 "$rounds"); do
  echo "== round $round: upload-tickets" >&2
  bench_run "ours.$round" "$port" -- "${bench_ours_env[@]}" "$binary" serve --config bench/bench.toml
  for amount in 0 "${works[@]}"; do
    echo "== round $round: ceiling with $amount us of work" >&2
    nanos=$(awk -v us="$amount" 'BEGIN { printf "%d", us * 1000 }')
    bench_run "work$amount.$round" "$ceiling_port" -- \
      target/release/upload-tickets-ceiling "127.0.0.1:$ceiling_port" "$nanos"
  done
done

node -e '
  const fs = require("fs"), os = require("os");
  const [dir, rounds, duration, ...works] = process.argv.slice(1);
  const rs = [...Array(Number(rounds)).keys()].map((i) => i + 1);
  const read = (n, r) => JSON.parse(fs.readFileSync(`${dir}/${n}.${r}.json`, "utf8"));
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  const cpu = (n, r) => read(n, r).cpu_us_per_request;
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ${new Date().toISOString()}; ${rounds} rounds of wrk -t2 -c64 -d${duration}s on 127.0.0.1, variants alternating`);
  // Per work amount: CPU over the plain ceiling, same round.
  const points = ["0", ...works].map((w) => {
    const ratio = median(rs.map((r) => cpu(`work${w}`, r) / cpu("work0", r)));
    const surcharge = median(rs.map((r) => (cpu(`work${w}`, r) - cpu("work0", r)) / Number(w)));
    const rps = median(rs.map((r) => read(`work${w}`, r).rps));
    console.log(`ceiling + ${w.padStart(4)} us work ${rps.toFixed(0).padStart(8)} req/s  CPU ${median(rs.map((r) => cpu(`work${w}`, r))).toFixed(1).padStart(5)} us/req  CPU/ceiling ${ratio.toFixed(2)}x` + (Number(w) > 0 ? `  CPU added per us of work ${surcharge.toFixed(2)}` : ""));
    return [Number(w), ratio];
  });
  const ours = median(rs.map((r) => cpu("ours", r) / cpu("work0", r)));
  console.log(`upload-tickets          ${median(rs.map((r) => read("ours", r).rps)).toFixed(0).padStart(8)} req/s  CPU ${median(rs.map((r) => cpu("ours", r))).toFixed(1).padStart(5)} us/req  CPU/ceiling ${ours.toFixed(2)}x`);
  // The work at which the ratio reaches `target`, between the two points around it.
  const at = (target) => {
    for (let i = 1; i < points.length; i++) {
      const [w0, r0] = points[i - 1], [w1, r1] = points[i];
      if (r1 >= target && r1 > r0) return w0 + ((target - r0) * (w1 - w0)) / (r1 - r0);
    }
    return null;
  };
  const show = (w) => (w === null ? `more than ${points[points.length - 1][0]} us` : `${w.toFixed(1)} us`);
  console.log(`work per request within 2x the ceiling: ${show(at(2))}; upload-tickets costs what the ceiling does with ${show(at(ours))} of work`);
' "$work" "$rounds" "$duration" "${works[@]}"
