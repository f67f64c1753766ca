#!/usr/bin/env bash
# TLS throughput beside plaintext, in one run, on loopback:
#
#   new connections per second  wrk with `Connection: close`: one request per connection,
#                               so each request pays a TCP (and TLS) handshake
#   kept-alive HTTP/1.1 req/s   wrk, CONNS connections
#   kept-alive HTTP/2 req/s     h2load, 8 connections x 16 streams (h2c vs h2 over TLS)
#
# Two weirs run side by side on the same synthetic upstream: one plaintext, one with
# TLS (strict, no client certificates). Each load runs alone, so they do not compete.
# Needs wrk, h2load (nghttp2-client) and openssl. Everything it starts is killed by PID
# on exit. Figures are noisy on a shared machine: the client, weir and the upstream
# share the same cores.
#
#   bash benches/tls.sh                      # DURATION=10 CONNS=32 by default
#   DURATION=5 CONNS=64 bash benches/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
for tool in wrk h2load openssl; do
    command -v "$tool" >/dev/null || { echo "benches/tls.sh: needs $tool" >&2; exit 1; }
done

echo "== building weir (release)" >&2
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/weir"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A CA and a server certificate for localhost/127.0.0.1 (P-256, as a mesh would use).
(
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=weir bench CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout server-key.pem -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem 2>/dev/null
)

# Starts a process in the background, logging to $WORK/NAME.log; records its PID.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
}

# Waits for `KEY=ADDR` in a log (the startup line) and prints ADDR.
address_in_log() {
    local log=$1 key=$2
    for _ in $(seq 1 200); do
        local addr
        addr=$(grep -o "$key=[0-9.:]*" "$log" 2>/dev/null | head -1 | cut -d= -f2 || true)
        if [ -n "$addr" ]; then echo "$addr"; return; fi
        sleep 0.05
    done
    echo "benches/tls.sh: no $key in $log:" >&2
    cat "$log" >&2
    exit 1
}

start upstream "$BIN" upstream --listen 127.0.0.1:0 --name bench --workers 1
UPSTREAM=$(address_in_log "$WORK/upstream.log" listen)

config() {
    cat <<EOF
listen: 127.0.0.1:0
admin: 127.0.0.1:0
$1
destinations:
  bench: { endpoints: ["$UPSTREAM"] }
routes:
  - name: all
    split: { bench: 100 }
EOF
}
config "" >"$WORK/plain.yaml"
config "tls: { cert: server.pem, key: server-key.pem }" >"$WORK/tls.yaml"
start weir-plain "$BIN" run --config "$WORK/plain.yaml"
start weir-tls "$BIN" run --config "$WORK/tls.yaml"
PLAIN=$(address_in_log "$WORK/weir-plain.log" listen)
TLS=$(address_in_log "$WORK/weir-tls.log" listen)
curl -fsS --cacert "$WORK/ca.pem" "https://$TLS/" >/dev/null
curl -fsS "http://$PLAIN/" >/dev/null

wrk_rps() { # URL [wrk args...]
    local url=$1
    shift
    wrk -t1 -d"${DURATION}s" "$@" "$url" | awk '/Requests\/sec/ { print $2 }'
}
h2load_rps() { # URL
    h2load -c 8 -m 16 -D "$DURATION" --warm-up-time=1 "$1" 2>/dev/null |
        awk '/^finished in/ { gsub(",", "", $4); print $4 }'
}

echo "== new connections (wrk -c 16, Connection: close)" >&2
NEW_PLAIN=$(wrk_rps "http://$PLAIN/" -c16 -H "Connection: close")
NEW_TLS=$(wrk_rps "https://$TLS/" -c16 -H "Connection: close")
echo "== kept-alive HTTP/1.1 (wrk -c $CONNS)" >&2
H1_PLAIN=$(wrk_rps "http://$PLAIN/" -c"$CONNS")
H1_TLS=$(wrk_rps "https://$TLS/" -c"$CONNS")
echo "== kept-alive HTTP/2 (h2load -c 8 -m 16)" >&2
H2_PLAIN=$(h2load_rps "http://$PLAIN/")
H2_TLS=$(h2load_rps "https://$TLS/")

echo
echo "weir TLS vs plaintext, ${DURATION}s per cell, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '| %-44s | %12s | %12s | %9s |\n' "load" "plaintext/s" "TLS/s" "TLS/plain"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..14})" \
    "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..11})"
row() {
    local ratio
    ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }')
    printf '| %-44s | %12.0f | %12.0f | %9s |\n' "$1" "$2" "$3" "$ratio"
}
row "new connections (1 request each, wrk -c16)" "$NEW_PLAIN" "$NEW_TLS"
row "HTTP/1.1 kept-alive requests (wrk -c$CONNS)" "$H1_PLAIN" "$H1_TLS"
row "HTTP/2 kept-alive requests (h2load -c8 -m16)" "$H2_PLAIN" "$H2_TLS"
