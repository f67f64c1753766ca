#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: a
# measure of weir's own cost that the noise of a shared machine does not move, for
# before/after comparisons of a change on the request path.
#
#   bash benches/callgrind.sh            # HTTP/1.1 and HTTP/2, weir only
#   PEERS=1 bash benches/callgrind.sh    # nginx too (HTTP/1.1 and HTTP/2)
#   KEEP=1 bash benches/callgrind.sh     # keep the callgrind files (for callgrind_annotate)
#
# weir (release build, one worker) proxies the same 80/10/10 split as benches/load.sh to
# an nginx backend on three loopback ports. Each protocol is measured twice, with 2,000
# and with 22,000 requests from h2load over 64 connections (`--h1`, or HTTP/2 with 4
# streams each); the difference divided by 20,000 is the cost per request, start-up and
# shutdown cancelled out. Everything it starts listens on 127.0.0.1 and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

source benches/common.sh
install_missing valgrind:valgrind nginx:nginx h2load:nghttp2-client
# nginx's worker drops root and must still write its callgrind file.
chmod 755 "$work"
mkdir -m 1777 "$work/cg"
start_backend

PORT=$(free_port); NGINX_H1=$(free_port); NGINX_H2=$(free_port)
cat > "$work/weir.yaml" <<CONF
listen: 127.0.0.1:$PORT
admin: 127.0.0.1:$(free_port)
access_log: false
workers: 1
destinations:
  release:  { endpoints: ["127.0.0.1:$B1"] }
  baseline: { endpoints: ["127.0.0.1:$B2"] }
  canary:   { endpoints: ["127.0.0.1:$B3"] }
routes:
  - name: primary
    split: { release: 80, baseline: 10, canary: 10 }
CONF
nginx_proxy_config "$NGINX_H1" "$NGINX_H2"

# One count: $1 proxy (weir|nginx), $2 protocol (h1|h2), $3 requests. Prints the
# instructions callgrind counted over the proxy's whole life.
count() {
  local out=$work/cg/$1.$2.$3 cmd port
  case $1 in
    weir) cmd=("$WEIR" --log-level warn run --config "$work/weir.yaml"); port=$PORT ;;
    # nginx's master forks one worker; callgrind follows it (--trace-children).
    nginx) cmd=(nginx -c "$work/nginx-proxy.conf" -p "$work" -e /dev/null)
      port=$NGINX_H1; [ "$2" = h2 ] && port=$NGINX_H2 ;;
  esac
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out.%p" \
    "${cmd[@]}" > "$out.log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$work/pids"
  wait_port "$port" 600
  if [ "$2" = h1 ]; then
    h2load --h1 -n "$3" -c 64 "http://127.0.0.1:$port/" > "$out.load" 2>&1
  else
    h2load -n "$3" -c 64 -m 4 "http://127.0.0.1:$port/" > "$out.load" 2>&1
  fi
  grep -q "$3 succeeded" "$out.load" || { echo "$1 $2: not every request succeeded:" >&2; cat "$out.load" >&2; exit 1; }
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  # Sum over the processes (weir is one; nginx is a master and a worker).
  grep -h "I *refs:" "$out.log" | awk '{gsub(",", "", $NF); s += $NF} END {print s}'
}

proxies=(weir)
[ -n "${PEERS:-}" ] && proxies+=(nginx)
echo
echo "| proxy | protocol | user-space instructions per request |"
echo "|---|---|---:|"
for p in "${proxies[@]}"; do
  for proto in h1 h2; do
    a=$(count "$p" "$proto" 2000)
    b=$(count "$p" "$proto" 22000)
    echo "| $p | $proto | $(( (b - a) / 20000 )) |"
  done
done
