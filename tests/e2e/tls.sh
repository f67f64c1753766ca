#!/usr/bin/env bash
# End-to-end TLS checks with real clients against the release binary: curl over
# HTTP/1.1 and HTTP/2 with and without a client certificate, openssl s_client with ALPN
# h2, strict and permissive listeners. Certificates are made with openssl, as the README
# shows. Everything listens on 127.0.0.1 with kernel-picked ports (read back from the
# logs) and is stopped by PID on exit. Needs: cargo, curl, openssl.
# Prints `e2e tls: N passed, N failed` last; exits non-zero if any check failed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
cargo build --release --locked --quiet
WEIR="${CARGO_TARGET_DIR:-$ROOT/target}/release/weir"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/weir-e2e-tls.XXXXXX")"
PIDS=()
PASSED=0
FAILED=0
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$FAILED" -ne 0 ]; then
        for log in "$WORK"/*.log; do echo "---- $(basename "$log")"; tail -n 20 "$log"; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1${2:+: $2}"; }
# expect NAME WANT COMMAND...: the command's stdout must contain WANT.
expect() {
    local name=$1 want=$2 out
    shift 2
    out=$("$@" 2>&1 || true)
    if [[ "$out" == *"$want"* ]]; then ok "$name"; else fail "$name" "wanted '$want', got: $out"; fi
}
# refused NAME COMMAND...: the command must fail.
refused() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then fail "$name" "was served"; else ok "$name"; fi
}

(
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=weir e2e CA" -keyout ca-key.pem -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout server-key.pem -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=shop/CN=e2e-client" \
        -keyout client-key.pem -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
        -extfile client.ext -out client.pem
) >/dev/null 2>&1

start() { # NAME COMMAND...
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
}
listen_of() { # LOG: waits for the startup line, prints the port
    for _ in $(seq 1 200); do
        local addr
        addr=$(grep -o 'listen=[0-9.:]*' "$1" 2>/dev/null | head -1 | cut -d= -f2 || true)
        if [ -n "$addr" ]; then echo "${addr##*:}"; return; fi
        sleep 0.05
    done
    echo "no startup line in $1" >&2
    cat "$1" >&2
    exit 1
}

start upstream "$WEIR" upstream --listen 127.0.0.1:0 --name release
UP=$(listen_of "$WORK/upstream.log")
for mode in strict permissive; do
    cat >"$WORK/$mode.yaml" <<EOF
listen: 127.0.0.1:0
admin: 127.0.0.1:0
access_log: true
tls: { cert: server.pem, key: server-key.pem, client_ca: ca.pem, mode: $mode }
destinations:
  release: { endpoints: ["127.0.0.1:$UP"] }
routes:
  - name: all
    split: { release: 100 }
EOF
    start "weir-$mode" "$WEIR" run --config "$WORK/$mode.yaml"
done
STRICT=$(listen_of "$WORK/weir-strict.log")
PERMISSIVE=$(listen_of "$WORK/weir-permissive.log")

C=(curl -sS --max-time 10 --cacert "$WORK/ca.pem")
ID=(--cert "$WORK/client.pem" --key "$WORK/client-key.pem")
V=(-o /dev/null -w '%{http_code} HTTP/%{http_version}')

expect "strict: curl --http1.1 with a client certificate" "200 HTTP/1.1" \
    "${C[@]}" "${ID[@]}" --http1.1 "${V[@]}" "https://localhost:$STRICT/"
expect "strict: curl --http2 with a client certificate" "200 HTTP/2" \
    "${C[@]}" "${ID[@]}" --http2 "${V[@]}" "https://localhost:$STRICT/"
refused "strict: curl without a client certificate is refused" \
    "${C[@]}" -f "https://localhost:$STRICT/"
refused "strict: plaintext is refused" curl -sSf --max-time 10 "http://127.0.0.1:$STRICT/"
expect "strict: openssl s_client -alpn h2 negotiates h2" "ALPN protocol: h2" \
    openssl s_client -connect "127.0.0.1:$STRICT" -alpn h2 -CAfile "$WORK/ca.pem" \
    -cert "$WORK/client.pem" -key "$WORK/client-key.pem" </dev/null
expect "strict: openssl s_client verifies weir's certificate" "Verify return code: 0 (ok)" \
    openssl s_client -connect "127.0.0.1:$STRICT" -alpn h2 -CAfile "$WORK/ca.pem" \
    -cert "$WORK/client.pem" -key "$WORK/client-key.pem" </dev/null
expect "strict: openssl s_client -tls1_2 works" "Protocol  : TLSv1.2" \
    openssl s_client -connect "127.0.0.1:$STRICT" -tls1_2 -CAfile "$WORK/ca.pem" \
    -cert "$WORK/client.pem" -key "$WORK/client-key.pem" </dev/null
expect "strict: TLS 1.1 is refused by weir" "alert handshake failure" \
    openssl s_client -connect "127.0.0.1:$STRICT" -tls1_1 -CAfile "$WORK/ca.pem" </dev/null
expect "strict: the access log has the TLS version and subject" 'tls="TLSv1.3" client_subject="CN=e2e-client,O=shop"' \
    cat "$WORK/weir-strict.log"

expect "permissive: plaintext HTTP/1.1" "200 HTTP/1.1" \
    curl -sS --max-time 10 "${V[@]}" "http://127.0.0.1:$PERMISSIVE/"
expect "permissive: plaintext h2c" "200 HTTP/2" \
    curl -sS --max-time 10 --http2-prior-knowledge "${V[@]}" "http://127.0.0.1:$PERMISSIVE/"
expect "permissive: mTLS over HTTP/2" "200 HTTP/2" \
    "${C[@]}" "${ID[@]}" --http2 "${V[@]}" "https://localhost:$PERMISSIVE/"
expect "permissive: TLS without a client certificate" "200 HTTP/1.1" \
    "${C[@]}" --http1.1 "${V[@]}" "https://localhost:$PERMISSIVE/"

echo "e2e tls: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
