# Shared by bench/load.sh, bench/ab.sh and bench/soak.sh (sourced from the repository
# root): what they need installed, the release build, tokens for bench/bench.toml's
# tenant, and one measured run of a server.

peer=bench/node-peer
export BENCH_JWT_SECRET="bench-hmac-secret-of-at-least-32-bytes-long"

# wrk and the Node peer's packages (its jsonwebtoken makes the tokens).
bench_tools() {
  if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk
  fi
  if [ ! -f "$peer/node_modules/.package-lock.json" ] || [ "$peer/package-lock.json" -nt "$peer/node_modules/.package-lock.json" ]; then
    (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The test tools, bench_tools, and the release build of the service.
bench_prepare() {
  bash scripts/install-test-deps.sh
  bench_tools
  echo "== building (release)" >&2
  cargo build --release --bin upload-tickets >&2
}

# The bare axum ceiling, release build.
bench_ceiling() {
  cargo build --release --manifest-path bench/ceiling/Cargo.toml --target-dir target >&2
}

# The Rust peer (bench/rust-peer: axum + jsonwebtoken + rust-s3's presign_post, the same
# job), release build: the baseline of CPU per ticket that issue #31 measures us against.
bench_rust_peer() {
  cargo build --release --manifest-path bench/rust-peer/Cargo.toml --target-dir target >&2
}

# $work, a scratch folder, and $pids, the servers started: both cleaned up at exit.
bench_workspace() {
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

# What the scripts of alternating rounds (ab.sh, amplification.sh) share: wrk's settings,
# the ports, the tools, the ceiling, a workspace and a token valid for two hours.
bench_alternating() {
  connections=64 threads=2 port=18080 ceiling_port=18081 rust_peer_port=18083
  bench_tools
  bench_ceiling
  bench_rust_peer
  bench_workspace
  TOKEN=$(bench_token uploads:write 7200)
  export TOKEN
}

# bench_token SCOPE EXPIRES_IN: an HS256 token for tenant "bench"; a negative EXPIRES_IN
# makes one that expired that many seconds ago.
bench_token() {
  (cd "$peer" && node -e '
    const jwt = require("jsonwebtoken");
    const [scope, expiresIn] = process.argv.slice(1).map((v, i) => (i ? Number(v) : v));
    const claims = { sub: "user-42", tenant: "bench", scope };
    const options = { algorithm: "HS256", issuer: "https://id.bench/", audience: "upload-tickets" };
    if (expiresIn < 0) claims.exp = Math.floor(Date.now() / 1000) + expiresIn;
    else options.expiresIn = expiresIn;
    console.log(jwt.sign(claims, process.env.BENCH_JWT_SECRET, options));' "$1" "$2")
}

# The environment upload-tickets runs in under load: example AWS keys (signing is
# offline), no instance metadata, the JSON access log on.
bench_ours_env=(env AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_EC2_METADATA_DISABLED=true
  RUST_LOG="${RUST_LOG:-info}")

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# bench_run NAME PORT -- COMMAND...: start the server, check one ticket, warm up for 2 s
# ($warmup),
# measure for $duration s with $connections connections, record its peak RSS and CPU
# time, stop it. Writes $work/NAME.json; the caller sets duration, connections, threads,
# work and pids (the PIDs its trap stops), and exports TOKEN.
bench_run() {
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
  # The warm-up; skipped with warmup=0 (runs whose tokens must all be new).
  if [ "${warmup:-2}" != 0 ]; then
    wrk -t"$threads" -c"$connections" -d"${warmup:-2}s" -s bench/post-upload.lua "http://127.0.0.1:$port/uploads" >/dev/null
  fi
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
