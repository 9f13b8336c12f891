#!/usr/bin/env bash
# Tokens from an identity provider: POST /uploads under the load of bench/load.sh with
# HS256 (bench/bench.toml) and with RS256 and ES256 tokens whose keys come from a JWKS
# served on loopback (bench/bench-jwks.toml), each with the verified-token cache on and
# off, plus every token new (cache on, a token the server has never seen per request),
# and the Node peer with the same HS256 and RS256 tokens; rounds alternate. Reports per
# variant the medians of req/s, p99 and server CPU per ticket, and CPU over HS256's.
#
# Usage: bench/tokens.sh [ROUNDS] [SECONDS]   (defaults: 2 rounds, 8 s)
# Uses target/release/upload-tickets (built here); only 127.0.0.1 is targeted; every
# server started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-2}" seconds="${2:-8}"
connections=64 threads=2 port=18080 node_port=18082 jwks_port=18090
# Fresh runs are short: each needs more tokens than requests (RSA signing is slow).
fresh_seconds=2 rs_tokens=20000 es_tokens=60000
binary="${UPLOAD_TICKETS_BIN:-target/release/upload-tickets}"

source bench/common.sh
bench_tools
[ -n "${UPLOAD_TICKETS_BIN:-}" ] || cargo build --release --bin upload-tickets >&2
bench_workspace
keys="$PWD/tests/fixtures/jwt"

# The identity provider: the two public keys as a JWKS, served by a static file server.
mkdir -p "$work/idp"
(cd "$peer" && node -e '
  const { createPublicKey } = require("crypto"), fs = require("fs");
  const [dir, out] = process.argv.slice(1);
  const jwk = (file, kid, alg) => ({ ...createPublicKey(fs.readFileSync(`${dir}/${file}`)).export({ format: "jwk" }), kid, alg, use: "sig" });
  fs.writeFileSync(out, JSON.stringify({ keys: [jwk("rsa-a-public.pem", "rsa-a", "RS256"), jwk("ec-public.pem", "ec", "ES256")] }));
' "$keys" "$work/idp/jwks.json")
python3 -m http.server "$jwks_port" --bind 127.0.0.1 --directory "$work/idp" >/dev/null 2>&1 &
pids+=($!)
wait_for_port "$jwks_port"

# sign ALG KEY KID COUNT: COUNT tokens (distinct subjects when COUNT > 1), one a line.
sign() {
  (cd "$peer" && node -e '
    const jwt = require("jsonwebtoken"), fs = require("fs");
    const [alg, key, kid, count] = process.argv.slice(1);
    const pem = fs.readFileSync(key), lines = [];
    for (let n = 0; n < Number(count); n++) {
      const sub = count === "1" ? "user-42" : `user-${n}`;
      lines.push(jwt.sign({ sub, tenant: "bench", scope: "uploads:write" }, pem,
        { algorithm: alg, keyid: kid, issuer: "https://id.bench/", audience: "upload-tickets", expiresIn: 7200 }));
    }
    console.log(lines.join("\n"));' "$1" "$keys/$2" "$3" "$4")
}
hs=$(bench_token uploads:write 7200)
rs=$(sign RS256 rsa-a-private.pem rsa-a 1)
es=$(sign ES256 ec-private.pem ec 1)
echo "== signing $rs_tokens RS256 and $es_tokens ES256 fresh tokens" >&2
sign RS256 rsa-a-private.pem rsa-a "$rs_tokens" >"$work/rs.tokens"
sign ES256 ec-private.pem ec "$es_tokens" >"$work/es.tokens"

off=(UPLOAD_TICKETS__AUTH__TOKEN_CACHE=false)
labels=(hs256 rs256 rs256-nocache rs256-fresh es256 es256-nocache es256-fresh node-hs256 node-rs256)
for round in $(seq 1 "$rounds"); do
  for label in "${labels[@]}"; do
    echo "== round $round: $label" >&2
    duration=$seconds warmup=2
    unset TOKENS_FILE
    # bench-jwks.toml names the JWKS at 127.0.0.1:$jwks_port.
    config=bench/bench-jwks.toml extra=()
    case $label in
      hs256) TOKEN=$hs config=bench/bench.toml extra=() ;;
      rs256) TOKEN=$rs ;;
      rs256-nocache) TOKEN=$rs extra+=("${off[@]}") ;;
      rs256-fresh) TOKEN=$rs duration=$fresh_seconds warmup=0; export TOKENS_FILE="$work/rs.tokens" ;;
      es256) TOKEN=$es ;;
      es256-nocache) TOKEN=$es extra+=("${off[@]}") ;;
      es256-fresh) TOKEN=$es duration=$fresh_seconds warmup=0; export TOKENS_FILE="$work/es.tokens" ;;
    esac
    case $label in
      node-hs256) export TOKEN=$hs
        bench_run "$label.$round" "$node_port" -- node "$peer/server.mjs" 127.0.0.1 "$node_port" ;;
      node-rs256) export TOKEN=$rs
        bench_run "$label.$round" "$node_port" -- env BENCH_JWT_PUBLIC_KEY="$keys/rsa-a-public.pem" \
          node "$peer/server.mjs" 127.0.0.1 "$node_port" ;;
      *) export TOKEN
        bench_run "$label.$round" "$port" -- "${bench_ours_env[@]}" "${extra[@]}" "$binary" serve --config "$config" ;;
    esac
  done
done
unset TOKENS_FILE

node -e '
  const fs = require("fs"), os = require("os");
  const [dir, rounds, seconds, ...labels] = process.argv.slice(1);
  const rs = [...Array(Number(rounds)).keys()].map((i) => i + 1);
  const read = (n, r) => JSON.parse(fs.readFileSync(`${dir}/${n}.${r}.json`, "utf8"));
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ${new Date().toISOString()}; ${rounds} rounds, wrk -t2 -c64 -d${seconds}s (fresh: 2 s) on 127.0.0.1`);
  for (const name of labels) {
    const runs = rs.map((r) => read(name, r));
    const vsHs = rs.map((r) => read(name, r).cpu_us_per_request / read(name.startsWith("node") ? "node-hs256" : "hs256", r).cpu_us_per_request);
    const errors = runs.reduce((n, x) => n + x.errors + x.non_2xx, 0);
    const pool = name.endsWith("-fresh") ? fs.readFileSync(`${dir}/${name.slice(0, 2)}.tokens`, "utf8").trim().split("\n").length : Infinity;
    // The warm-up sends tokens too; a fresh run that sent more than the pool repeated some.
    const repeats = runs.some((x) => x.requests > pool) ? "  (tokens repeated: pool too small)" : "";
    console.log(`${name.padEnd(14)} ${median(runs.map((x) => x.rps)).toFixed(0).padStart(7)} req/s  p99 ${median(runs.map((x) => x.p99_ms)).toFixed(2).padStart(7)} ms  CPU ${median(runs.map((x) => x.cpu_us_per_request)).toFixed(1).padStart(6)} us/ticket  CPU/hs256 ${median(vsHs).toFixed(2)}x [${vsHs.map((x) => x.toFixed(2)).join(" ")}]  errors ${errors}${repeats}`);
  }
' "$work" "$rounds" "$seconds" "${labels[@]}"
