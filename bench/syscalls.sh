#!/usr/bin/env bash
# Where a request's kernel time goes: system calls and context switches per request of
# upload-tickets (release build, bench/bench.toml) and of the bare axum ceiling, under the
# load of bench/load.sh. Per server: `perf stat` over a measured run (all system calls,
# context switches, CPU migrations: cheap enough not to change the answer), then
# `strace -c -f` over a second, shorter run for the split by call (strace slows the
# server down; its counts per request still compare).
#
# Usage: bench/syscalls.sh [SECONDS] [BINARY]   (defaults: 8 s, target/release/upload-tickets)
# Only 127.0.0.1 is targeted; every server started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-8}"
binary="${2:-target/release/upload-tickets}"
connections=64 threads=2 port=18080 ceiling_port=18081

source bench/common.sh
bench_tools
bench_ceiling
bench_workspace
for tool in perf strace; do
  command -v "$tool" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq linux-perf strace; }
done
TOKEN=$(bench_token uploads:write 7200)
export TOKEN

# switches PID: voluntary and involuntary context switches of all its threads so far.
switches() {
  cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v, n}'
}

# count NAME PORT -- COMMAND...: the server under load, counted twice.
count() {
  local name=$1 port=$2
  shift 3
  "$@" >/dev/null 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  wait_for_port "$port"
  wrk -t"$threads" -c"$connections" -d2s -s bench/post-upload.lua "http://127.0.0.1:$port/uploads" >/dev/null
  switches "$pid" >"$work/$name.switches.before"
  local stat_before stat_after
  stat_before=$(awk '{print $14, $15}' "/proc/$pid/stat")
  perf stat -x, -e raw_syscalls:sys_enter,context-switches,cpu-migrations,irq:softirq_entry \
    -p "$pid" -o "$work/$name.perf" -- sleep "$duration" &
  local perf_pid=$!
  wrk -t"$threads" -c"$connections" -d"${duration}s" -s bench/post-upload.lua \
    "http://127.0.0.1:$port/uploads" | tail -n 1 >"$work/$name.json"
  wait "$perf_pid" || true
  stat_after=$(awk '{print $14, $15}' "/proc/$pid/stat")
  switches "$pid" >"$work/$name.switches.after"
  echo "$stat_before $stat_after $(getconf CLK_TCK)" >"$work/$name.cpu"
  strace -c -f -p "$pid" -o "$work/$name.strace" &
  local strace_pid=$!
  sleep 0.5
  wrk -t"$threads" -c"$connections" -d3s -s bench/post-upload.lua \
    "http://127.0.0.1:$port/uploads" | tail -n 1 >"$work/$name.strace.json"
  kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  node -e '
    const fs = require("fs"), [dir, name] = process.argv.slice(1);
    const run = JSON.parse(fs.readFileSync(`${dir}/${name}.json`, "utf8"));
    const traced = JSON.parse(fs.readFileSync(`${dir}/${name}.strace.json`, "utf8"));
    const perf = Object.fromEntries(fs.readFileSync(`${dir}/${name}.perf`, "utf8").split("\n")
      .filter((l) => l && !l.startsWith("#")).map((l) => l.split(",")).map((f) => [f[2], Number(f[0])]));
    const per = (n) => (n / run.requests).toFixed(3);
    const nums = (f) => fs.readFileSync(`${dir}/${name}.${f}`, "utf8").trim().split(/\s+/).map(Number);
    const [u0, s0, u1, s1, hz] = nums("cpu"), us = (ticks) => (ticks / hz * 1e6 / run.requests).toFixed(1);
    const [v0, n0] = nums("switches.before"), [v1, n1] = nums("switches.after");
    console.log(`${name}: ${run.requests} requests (${run.rps.toFixed(0)} req/s); per request: ` +
      `CPU ${us(u1 - u0)} us user + ${us(s1 - s0)} us kernel, ` +
      `${per(perf["raw_syscalls:sys_enter"])} system calls, ${per(perf["context-switches"])} context switches ` +
      `(${per(v1 - v0)} voluntary, ${per(n1 - n0)} involuntary), ${per(perf["cpu-migrations"])} migrations, ` +
      `${per(perf["irq:softirq_entry"])} softirqs run on its threads`);
    const rows = fs.readFileSync(`${dir}/${name}.strace`, "utf8").split("\n")
      .map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 5 && /^[0-9.]+$/.test(f[0]) && f[f.length - 1] !== "total");
    const calls = rows.map((f) => [f[f.length - 1], Number(f[3])]).sort((a, b) => b[1] - a[1]);
    console.log(`  strace (${traced.requests} requests): ` + calls.slice(0, 8)
      .map(([call, n]) => `${call} ${(n / traced.requests).toFixed(3)}`).join(", "));
  ' "$work" "$name"
}

count ours "$port" -- "${bench_ours_env[@]}" "$binary" serve --config bench/bench.toml
count ceiling "$ceiling_port" -- target/release/upload-tickets-ceiling "127.0.0.1:$ceiling_port"
