#!/usr/bin/env bash
# The cost of limits under the load of bench/load.sh, in ONE run with alternating rounds
# (bench/ab.sh): the same release binary with no limits, with limits counted in process,
# and with limits counted in a real redis-server on loopback (sharing the two cores with
# the service and the load generator, as a replica and its Redis would on a small host).
# The bench tenant gets limits high enough never to refuse, so every ticket pays for
# its check. Reports req/s, p99 and server CPU per ticket of each, and their ratios.
# Only 127.0.0.1 is targeted; redis-server is started here and stopped by its PID.
#
# Usage: bench/limits.sh [ROUNDS] [SECONDS] [BINARY]   (defaults: 3, 8, target/release/upload-tickets)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}" duration="${2:-8}" binary="${3:-target/release/upload-tickets}"
redis_port=18090
command -v redis-server >/dev/null || { echo "redis-server is not installed: run scripts/install-test-deps.sh" >&2; exit 1; }
redis_dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$redis_dir" >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.05
done

limited="UPLOAD_TICKETS__TENANTS__BENCH__RATE_LIMIT_PER_MINUTE=1000000000,UPLOAD_TICKETS__TENANTS__BENCH__TENANT_RATE_LIMIT_PER_MINUTE=1000000000,UPLOAD_TICKETS__TENANTS__BENCH__BYTES_PER_DAY=1000000000000000"
bash bench/ab.sh "$rounds" "$duration" \
  "none=$binary" \
  "in-process=$binary,$limited" \
  "redis=$binary,$limited,UPLOAD_TICKETS__LIMITS__REDIS_URL=redis://127.0.0.1:$redis_port/0"
