#!/usr/bin/env bash
# Where a ticket's allocations come from, in the real server under load: the binary runs
# under valgrind's DHAT while wrk sends POST /uploads on one connection, and each
# allocation site that runs about once a ticket or more is put in the part of the path
# it belongs to (hyper, router and middleware, body JSON, token check, tenant rules,
# signing, limits and record, answer, access log). The counts the test pins
# (`tests/allocations`) leave out hyper and the middleware; this shows them too.
#
# Usage: bench/alloc-sites.sh BINARY [SECONDS]
# With ALLOC_SITES_DEPTH=N, each part lists its sites too, N frames of each (past the
# allocator's and the standard library's own).
# BINARY must use the system allocator (DHAT does not see jemalloc's):
#   cargo build --release --no-default-features --features service,dev-store
# Only 127.0.0.1 is targeted; the server started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
bench_tools >/dev/null
bin=$1 secs=${2:-6}
work=$(mktemp -d)
TOKEN=$(bench_token uploads:write 7200); export TOKEN
env AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
  AWS_EC2_METADATA_DISABLED=true RUST_LOG=info BENCH_JWT_SECRET="$BENCH_JWT_SECRET" \
  UPLOAD_TICKETS__SERVER__WORKERS=1 \
  valgrind --tool=dhat --dhat-out-file="$work/dhat.json" "$bin" serve --config bench/bench.toml \
  >/dev/null 2>"$work/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.1; done
requests=$(wrk -t1 -c1 -d"${secs}s" -s bench/post-upload.lua http://127.0.0.1:18080/uploads \
  | tail -n1 | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["non_2xx"]+r["errors"]==0, r; print(r["requests"])')
kill -TERM "$pid"; wait "$pid" || true
python3 - "$work/dhat.json" "$requests" "${ALLOC_SITES_DEPTH:-0}" <<'EOF'
import json, sys
dhat = json.load(open(sys.argv[1]))
requests = int(sys.argv[2])
detail = sys.argv[3] != "0"
depth = int(sys.argv[3]) if detail else 0
frames = dhat["ftbl"]
# The first frame (innermost first) naming one of these says whose allocation it is.
parts = [
    ("access log and metrics", ("upload_tickets::http::access", "upload_tickets::telemetry", "tracing_subscriber", "metrics")),
    ("answer", ("upload_tickets::http::answers", "upload_tickets::http::reply", "upload_tickets::http::extract::Authorized::reply", "upload_tickets::clock")),
    ("signing (presign core)", ("s3_presigned_post",)),
    ("limits and upload record", ("upload_tickets::limits", "upload_tickets::upload::ticket_record", "upload_tickets::upload::admit")),
    ("tenant rules", ("upload_tickets::policy", "mime::", "unicode_normalization")),
    ("token check", ("upload_tickets::auth",)),
    ("request body JSON", ("upload_tickets::http::extract::AppJson", "serde_core::de", "serde_json::de", "http_body_util", "axum::json")),
    ("ticket use case", ("upload_tickets::upload", "upload_tickets::http::uploads")),
    ("router and middleware", ("axum::", "tower::", "tower_http", "http::extensions", "upload_tickets::http")),
    ("hyper (connection, head)", ("hyper::", "hyper_util", "upload_tickets::startup")),
]
def owner(stack):
    for frame in stack:
        name = frames[frame].split(": ", 1)[-1].lstrip("<")
        for part, prefixes in parts:
            if name.startswith(prefixes):
                return part
    return "other"
per_part = {}
sites = {}
for point in dhat["pps"]:
    per_request = point["tbk"] / requests
    if per_request < 0.5:  # start-up, and what a ticket does only now and then
        continue
    part = owner(point["fs"])
    per_part[part] = per_part.get(part, 0) + per_request
    sites.setdefault(part, []).append((per_request, point["fs"]))
total = sum(per_part.values())
print(f"{requests} tickets; allocations per ticket: {total:.1f}")
for part, count in sorted(per_part.items(), key=lambda kv: -kv[1]):
    print(f"  {count:6.1f}  {part}")
    if detail:
        for per_request, stack in sorted(sites[part], key=lambda s: -s[0]):
            names = [frames[f].split(": ", 1)[-1] for f in stack]
            # Past the allocator's own frames: the first few that say who asked.
            names = [n for n in names if not n.startswith(("alloc::", "core::", "std::", "__rust", "malloc", "realloc", "calloc", "0x"))]
            print(f"          {per_request:5.1f}  " + "\n                 < ".join(n[:150] for n in names[:depth]))
EOF
