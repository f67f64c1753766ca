#!/usr/bin/env bash
# End-to-end checks of weir's core with real clients, against the release binary:
# curl over HTTP/1.1 and HTTP/2 (prior knowledge), h2load over both, a Python
# `websockets` client through weir to `weir upstream`, and a Python gRPC client and
# server (grpcio) through weir with the destination at `protocol: http2`.
#
# Everything listens on 127.0.0.1 with ports the kernel picks (port 0; the ports are
# read back from the logs), and everything started here is stopped by PID on exit.
# Needs: cargo, curl, h2load (nghttp2-client), python3 with grpcio and websockets.
# Exits non-zero if any check fails; prints `e2e core: N passed, N failed` last.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/e2e"
cd "$ROOT"

echo "e2e core: cargo build --release"
cargo build --release --locked --quiet
WEIR="${CARGO_TARGET_DIR:-$ROOT/target}/release/weir"
[ -x "$WEIR" ] || { echo "e2e: no binary at $WEIR" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/weir-e2e.XXXXXX")"
PIDS=()
PASSED=0
FAILED=0

cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "---- $(basename "$log") (last 20 lines)"
      tail -n 20 "$log"
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

pass() { echo "ok   $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $*"; FAILED=$((FAILED + 1)); }
check() { # check DESCRIPTION COMMAND...: pass if the command succeeds
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# spawn LOG COMMAND...: starts COMMAND in the background, output to LOG, and records
# its PID for the cleanup. Runs in this shell (not in $(...)), so PIDS keeps it.
spawn() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  PIDS+=("$!")
}

# field_from_log LOG MESSAGE KEY: waits (10 s) for the JSON log line with MESSAGE and
# prints its KEY field.
field_from_log() {
  local log=$1 message=$2 key=$3 line
  for _ in $(seq 1 200); do
    if line=$(grep -m1 -F "\"message\":\"$message\"" "$log" 2>/dev/null); then
      python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$key"
      return 0
    fi
    sleep 0.05
  done
  echo "e2e: no \"$message\" line in $log" >&2
  return 1
}

# --- upstreams -------------------------------------------------------------------
spawn "$WORK/release.log" "$WEIR" --log-format json upstream --listen 127.0.0.1:0 --name release --latency 1ms..2ms
spawn "$WORK/canary.log" "$WEIR" --log-format json upstream --listen 127.0.0.1:0 --name canary --latency 1ms..3ms
spawn "$WORK/grpc-server.log" python3 "$HERE/grpc_echo.py" server "$WORK/grpc.port"
RELEASE=$(field_from_log "$WORK/release.log" "synthetic upstream serving" listen)
CANARY=$(field_from_log "$WORK/canary.log" "synthetic upstream serving" listen)
for _ in $(seq 1 200); do [ -s "$WORK/grpc.port" ] && break; sleep 0.05; done
GRPC_PORT=$(cat "$WORK/grpc.port")
echo "e2e: upstreams release=$RELEASE canary=$CANARY grpc=127.0.0.1:$GRPC_PORT"

# --- weir ------------------------------------------------------------------------
cat >"$WORK/weir.yaml" <<EOF
listen: 127.0.0.1:0
admin: 127.0.0.1:0
service: shop
access_log: true
drain_timeout: 5s
destinations:
  release: { endpoints: ["$RELEASE"] }
  canary:  { endpoints: ["$CANARY"] }
  grpc:    { endpoints: ["127.0.0.1:$GRPC_PORT"], protocol: http2 }
routes:
  - name: grpc
    match: { headers: { content-type: { prefix: application/grpc } } }
    split: { grpc: 100 }
  - name: ws
    match: { path: /ws }
    split: { release: 100 }
  - name: app
    match: { path: { prefix: /app/ } }
    split: { release: 80, canary: 20 }
EOF
check "weir check accepts the e2e config" "$WEIR" check --config "$WORK/weir.yaml"

spawn "$WORK/weir.log" "$WEIR" --log-format json run --config "$WORK/weir.yaml"
WEIR_PID=${PIDS[-1]}
LISTEN=$(field_from_log "$WORK/weir.log" "weir is serving" listen)
ADMIN=$(field_from_log "$WORK/weir.log" "weir is serving" admin)
echo "e2e: weir listen=$LISTEN admin=$ADMIN"
ready=""
for _ in $(seq 1 200); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ADMIN/ready")" = 200 ]; then
    ready=yes
    break
  fi
  sleep 0.05
done
[ -n "$ready" ] || { echo "e2e: weir never became ready" >&2; exit 1; }

CURL=(curl -sS --max-time 20)

# --- curl: HTTP/1.1 and HTTP/2 prior knowledge ------------------------------------
curl_get() { # curl_get VERSION_FLAG PATH: prints "CODE|VERSION|UPSTREAM|FLAGS"; body in $WORK/body
  "${CURL[@]}" "$1" -o "$WORK/body" -D "$WORK/head" -w '%{http_code}|%{http_version}' "http://$LISTEN$2"
  printf '|%s|%s\n' \
    "$(grep -i '^x-weir-upstream:' "$WORK/head" | tr -d '\r' | awk '{print $2}')" \
    "$(grep -i '^x-weir-response-flags:' "$WORK/head" | tr -d '\r' | awk '{print $2}')"
}

out=$(curl_get --http1.1 /app/hello)
IFS="|" read -r code version upstream _ <<<"$out"
check "curl HTTP/1.1 through weir: 200 from release or canary ($out)" \
  test "$code $version" = "200 1.1" -a \( "$upstream" = release -o "$upstream" = canary \)
check "curl HTTP/1.1 body names the upstream" grep -qx "$upstream" "$WORK/body"

out=$(curl_get --http2-prior-knowledge /app/hello)
IFS="|" read -r code version upstream _ <<<"$out"
check "curl --http2-prior-knowledge through weir: HTTP/2 200 ($out)" \
  test "$code $version" = "200 2" -a \( "$upstream" = release -o "$upstream" = canary \)

head -c $((8 * 1024 * 1024)) /dev/zero >"$WORK/upload.bin"
for flag in --http1.1 --http2-prior-knowledge; do
  "${CURL[@]}" "$flag" -o /dev/null -D "$WORK/head" --data-binary @"$WORK/upload.bin" "http://$LISTEN/app/upload"
  bytes=$(grep -i '^x-weir-request-bytes:' "$WORK/head" | tr -d '\r' | awk '{print $2}')
  check "curl $flag 8 MiB upload reaches the upstream whole ($bytes bytes)" test "$bytes" = $((8 * 1024 * 1024))
done

out=$(curl_get --http1.1 /nowhere)
IFS="|" read -r code _ _ flags <<<"$out"
check "curl: no route is 404 with flag NR ($out)" test "$code $flags" = "404 NR"
out=$(curl_get --http2-prior-knowledge /nowhere)
IFS="|" read -r code _ _ flags <<<"$out"
check "curl h2c: no route is 404 with flag NR ($out)" test "$code $flags" = "404 NR"

# --- h2load: HTTP/2 and HTTP/1.1 load, no failures --------------------------------
h2load_ok() { # h2load_ok N ARGS...: runs h2load, checks N succeeded and nothing failed
  local n=$1; shift
  timeout 120 h2load -n "$n" "$@" >"$WORK/h2load.out" 2>&1 || { cat "$WORK/h2load.out"; return 1; }
  grep -E '^(requests|status codes):' "$WORK/h2load.out"
  grep -qE "^requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored, 0 timeout" "$WORK/h2load.out" &&
    grep -qE "^status codes: $n 2xx, 0 3xx, 0 4xx, 0 5xx" "$WORK/h2load.out"
}
check "h2load h2c: 5000 requests over 4 connections x 16 streams, 0 failed" \
  h2load_ok 5000 -c 4 -m 16 "http://$LISTEN/app/h2load"
check "h2load --h1: 3000 requests over 4 keep-alive connections, 0 failed" \
  h2load_ok 3000 --h1 -c 4 "http://$LISTEN/app/h1load"

# The split, from weir's access log: 80/20 within ±4 percentage points over 5000.
split_ok() {
  local release=0 canary=0
  for _ in $(seq 1 100); do
    release=$(grep -F '"path":"/app/h2load"' "$WORK/weir.log" | grep -cF '"destination":"release"' || true)
    canary=$(grep -F '"path":"/app/h2load"' "$WORK/weir.log" | grep -cF '"destination":"canary"' || true)
    [ $((release + canary)) -ge 5000 ] && break
    sleep 0.1
  done
  echo "     access log: release=$release canary=$canary"
  [ $((release + canary)) -eq 5000 ] && [ "$release" -ge 3800 ] && [ "$release" -le 4200 ]
}
check "access log: one line per h2load request, split 80/20 (±4 pp)" split_ok

# --- WebSocket: Python websockets client through weir to `weir upstream` ---------
check "python websockets: echo through weir" timeout 60 python3 "$HERE/ws_echo.py" "ws://$LISTEN/ws"

# --- gRPC: Python client and server through weir, HTTP/2 on both sides ----------
check "python grpc: calls, streaming, trailers and error statuses through weir" \
  timeout 60 python3 "$HERE/grpc_echo.py" client "$LISTEN"
grpc_logged() { grep -F '"route":"grpc"' "$WORK/weir.log" | grep -qF '"protocol":"HTTP/2.0"'; }
check "access log shows the gRPC calls on the grpc route" grpc_logged

# --- graceful shutdown -----------------------------------------------------------
kill -TERM "$WEIR_PID"
for _ in $(seq 1 300); do kill -0 "$WEIR_PID" 2>/dev/null || break; sleep 0.05; done
status=0
wait "$WEIR_PID" || status=$?
check "SIGTERM: weir drains and exits 0 (exit $status)" test "$status" -eq 0
check "SIGTERM: weir logged the drain" grep -qF '"message":"drained; exiting"' "$WORK/weir.log"

echo "e2e core: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
