# Shared by the benchmark scripts (sourced, not run): installing what is missing,
# building weir, a work directory and the processes to stop at exit, loopback ports,
# and the nginx backend every benchmark proxies to.

need() { command -v "$1" >/dev/null 2>&1; }

# install_missing CMD:PACKAGE... installs from Debian the packages whose command is missing.
install_missing() {
  local missing=() pair
  for pair in "$@"; do need "${pair%%:*}" || missing+=("${pair#*:}"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

cargo build --release --locked --quiet
# Where cargo put it: CARGO_TARGET_DIR (relative to here, or absolute) or ./target.
WEIR=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/weir

work=$(mktemp -d)
pids=()
# PIDs started in subshells go in this file, as pids+=() there would be lost.
: > "$work/pids"
cleanup() {
  local p
  while read -r p; do pids+=("$p"); done < "$work/pids"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "work files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT [TRIES]: waits (50 ms a try, 100 tries by default) for PORT to accept.
wait_port() {
  for _ in $(seq "${2:-100}"); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2; return 1
}

# start_backend [CPU]: one nginx worker answering `return 200` with a small body,
# keep-alive on, on three loopback ports ($B1 $B2 $B3), pinned to CPU when given.
start_backend() {
  B1=$(free_port); B2=$(free_port); B3=$(free_port)
  mkdir -p "$work/backend"
  cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/backend/nginx.pid;
error_log /dev/null crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$B1 reuseport; location / { return 200 "backend\n"; } }
  server { listen 127.0.0.1:$B2 reuseport; location / { return 200 "backend\n"; } }
  server { listen 127.0.0.1:$B3 reuseport; location / { return 200 "backend\n"; } }
}
CONF
  if [ -n "${1:-}" ]; then
    taskset -c "$1" nginx -c "$work/backend/nginx.conf" -p "$work/backend" -e /dev/null &
  else
    nginx -c "$work/backend/nginx.conf" -p "$work/backend" -e /dev/null &
  fi
  pids+=($!)
  wait_port "$B1"; wait_port "$B3"
}

# nginx_proxy_config H1_PORT H2_PORT: $work/nginx-proxy.conf, nginx as a proxy of the same
# 80/10/10 split over the backend, keep-alive pools on, logging off (HTTP/2 on H2_PORT).
nginx_proxy_config() {
  cat > "$work/nginx-proxy.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx-proxy.pid;
error_log /dev/null crit;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream release  { server 127.0.0.1:$B1; keepalive 512; }
  upstream baseline { server 127.0.0.1:$B2; keepalive 512; }
  upstream canary   { server 127.0.0.1:$B3; keepalive 512; }
  # A per-request random key, so every request is split anew, as weir and HAProxy do.
  split_clients "\${request_id}" \$destination { 80% release; 10% baseline; * canary; }
  server {
    listen 127.0.0.1:$1;
    listen 127.0.0.1:$2 http2;
    location / {
      proxy_pass http://\$destination;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
}
