# Shared by bench/load.sh and bench/soak.sh (sourced from the repository root): what both
# need installed, the release build, and tokens for bench/bench.toml's tenant.

peer=bench/node-peer
export BENCH_JWT_SECRET="bench-hmac-secret-of-at-least-32-bytes-long"

# The test tools, wrk, the Node peer's packages, and the release build of the service.
bench_prepare() {
  bash scripts/install-test-deps.sh
  if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk
  fi
  if [ ! -f "$peer/node_modules/.package-lock.json" ] || [ "$peer/package-lock.json" -nt "$peer/node_modules/.package-lock.json" ]; then
    (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  echo "== building (release)" >&2
  cargo build --release --bin upload-tickets >&2
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
