#!/usr/bin/env bash
# Side-by-side load benchmark: weir against nginx and HAProxy, each proxying an 80/10/10
# weighted split over the same three backend ports, each pinned to the same single CPU.
#
#   bash benches/load.sh                    # full run (about 8 minutes)
#   REPS=1 DURATION=5 bash benches/load.sh  # a quick look (about 2 minutes; noisier)
#   SCENARIOS=h2-64 REPS=5 bash benches/load.sh  # only some scenarios (h1-64 h1-256 h2-64)
#
# DURATION is the seconds of every measurement, h2load's included (-D); H2_REQUESTS=N
# makes h2load send a fixed N requests instead. The binary is CARGO_TARGET_DIR's (or
# target/'s) release build.
#
# Layout: the proxy under test runs alone on CPU 0 (PROXY_CPU); wrk/h2load and the
# backend (nginx answering `return 200` with a small body, keep-alive on) share CPU 1
# (LOAD_CPU). Everything listens on 127.0.0.1 ports picked free at start, and everything
# the script starts is stopped by PID when it exits.
#
# All proxies run side by side (idle ones cost nothing) and the repetitions are
# interleaved: each round measures every proxy in every scenario, so a noisy minute of
# a shared machine falls on all of them rather than on one.
#
# Per proxy and scenario it reports the median over REPS runs of requests/s, p50 and p99
# latency, and the proxy's CPU time per request (user+system from /proc/PID/stat over the
# run, divided by the requests served), plus idle and loaded RSS, and each peer's ratio
# to weir. It also measures weir with a 1,000-route config and with telemetry off.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
DURATION=${DURATION:-10}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
H2_REQUESTS=${H2_REQUESTS:-}
SCENARIOS=${SCENARIOS:-h1-64 h1-256 h2-64}

source benches/common.sh
install_missing wrk:wrk nginx:nginx haproxy:haproxy h2load:nghttp2-client

# --- the backend: one nginx worker, three ports, on the load CPU ----------------------
start_backend "$LOAD_CPU"

# --- the proxies under test, on the proxy CPU -----------------------------------------
NGINX_PORT=$(free_port); NGINX_H2=$(free_port)
HAPROXY_PORT=$(free_port); HAPROXY_H2=$(free_port)

weir_config() { # $1 = file, $2 = extra routes (count), $3 = telemetry true|false, $4 = port
  {
    echo "listen: 127.0.0.1:$4"
    echo "admin: 127.0.0.1:$(free_port)"
    echo "service: bench"
    echo "access_log: false"
    echo "telemetry: $3"
    echo "destinations:"
    echo "  release:  { endpoints: [\"127.0.0.1:$B1\"] }"
    echo "  baseline: { endpoints: [\"127.0.0.1:$B2\"] }"
    echo "  canary:   { endpoints: [\"127.0.0.1:$B3\"] }"
    echo "routes:"
    for i in $(seq 1 "$2"); do
      case $((i % 3)) in
        0) echo "  - { name: r$i, match: { headers: { x-tenant: \"t$i\" } }, split: { canary: 100 } }" ;;
        1) echo "  - { name: r$i, match: { path: { prefix: \"/svc/$i/\" } }, split: { canary: 100 } }" ;;
        2) echo "  - { name: r$i, match: { path: \"/exact/$i\" }, split: { canary: 100 } }" ;;
      esac
    done
    echo "  - name: primary"
    echo "    split: { release: 80, baseline: 10, canary: 10 }"
  } > "$1"
}
WEIR_PORT=$(free_port); WEIR_1000_PORT=$(free_port); WEIR_NOTEL_PORT=$(free_port)
weir_config "$work/weir.yaml" 0 true "$WEIR_PORT"
weir_config "$work/weir-1000.yaml" 999 true "$WEIR_1000_PORT"
weir_config "$work/weir-notelemetry.yaml" 0 false "$WEIR_NOTEL_PORT"

nginx_proxy_config "$NGINX_PORT" "$NGINX_H2"

cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  bind 127.0.0.1:$HAPROXY_H2 proto h2
  default_backend split
backend split
  balance random
  server release  127.0.0.1:$B1 weight 80
  server baseline 127.0.0.1:$B2 weight 10
  server canary   127.0.0.1:$B3 weight 10
CONF

PROXY_PID=""
declare -A PID PORT H2PORT
start_proxy() { # $1 = name
  case $1 in
    weir) taskset -c "$PROXY_CPU" "$WEIR" --log-level warn run --config "$work/weir.yaml" &
      PORT[$1]=$WEIR_PORT ;;
    weir-1000routes) taskset -c "$PROXY_CPU" "$WEIR" --log-level warn run --config "$work/weir-1000.yaml" &
      PORT[$1]=$WEIR_1000_PORT ;;
    weir-notelemetry) taskset -c "$PROXY_CPU" "$WEIR" --log-level warn run --config "$work/weir-notelemetry.yaml" &
      PORT[$1]=$WEIR_NOTEL_PORT ;;
    nginx) taskset -c "$PROXY_CPU" nginx -c "$work/nginx-proxy.conf" -p "$work" -e /dev/null &
      PORT[$1]=$NGINX_PORT; H2PORT[$1]=$NGINX_H2 ;;
    haproxy) taskset -c "$PROXY_CPU" haproxy -q -f "$work/haproxy.cfg" &
      PORT[$1]=$HAPROXY_PORT; H2PORT[$1]=$HAPROXY_H2 ;;
  esac
  PID[$1]=$!
  pids+=("${PID[$1]}")
  H2PORT[$1]=${H2PORT[$1]:-${PORT[$1]}}
  wait_port "${PORT[$1]}"
  sleep 0.3
}
# All processes of the proxy (nginx has a master and a worker).
proxy_tree() { echo "$PROXY_PID $(pgrep -P "$PROXY_PID" | tr '\n' ' ')"; }
# User and system CPU ticks of the proxy, as "USER,SYS".
cpu_ticks() {
  local u=0 s=0 p ticks
  for p in $(proxy_tree); do
    ticks=$(awk '{print $14 "," $15}' /proc/"$p"/stat 2>/dev/null || echo 0,0)
    u=$((u + ${ticks%,*})); s=$((s + ${ticks#*,}))
  done
  echo "$u,$s"
}
rss_kib() { local t=0; for p in $(proxy_tree); do t=$((t + $(awk '/^VmRSS/{print $2}' /proc/"$p"/status 2>/dev/null || echo 0))); done; echo "$t"; }

RESULTS=$work/results.tsv
: > "$RESULTS"
# One measurement: $1 proxy, $2 scenario (h1-64, h1-256, h2-64), $3 port, $4 rep.
measure() {
  local name=$1 scenario=$2 port=$3 out=$work/out.txt
  local before after rss
  before=$(cpu_ticks)
  case $scenario in
    h1-64)  taskset -c "$LOAD_CPU" wrk -t1 -c64  -d"${DURATION}s" --latency "http://127.0.0.1:$port/" > "$out" 2>&1 ;;
    h1-256) taskset -c "$LOAD_CPU" wrk -t1 -c256 -d"${DURATION}s" --latency "http://127.0.0.1:$port/" > "$out" 2>&1 ;;
    h2-64)
      if [ -n "$H2_REQUESTS" ]; then
        taskset -c "$LOAD_CPU" h2load -c64 -m4 -t1 -n "$H2_REQUESTS" "http://127.0.0.1:$port/" > "$out" 2>&1
      else
        taskset -c "$LOAD_CPU" h2load -c64 -m4 -t1 -D "$DURATION" "http://127.0.0.1:$port/" > "$out" 2>&1
      fi ;;
  esac
  rss=$(rss_kib)
  after=$(cpu_ticks)
  python3 - "$name" "$scenario" "$out" "$before" "$after" "$rss" >> "$RESULTS" <<'PY'
import re, sys
name, scenario, path, before, after, rss = sys.argv[1:]
text = open(path).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
if scenario.startswith("h1"):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    served = int(re.search(r"(\d+) requests in", text).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    lat = dict((p, ms(v, u)) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", text))
    p50, p99 = lat.get("50", 0.0), lat.get("99", 0.0)
else:
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text).group(1))
    served = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", text).group(1))
    errors = int(re.search(r"(\d+) failed", text).group(1)) + int(re.search(r"(\d+) errored", text).group(1))
    # h2load gives min/max/mean/sd per request; report the mean as p50 and max as p99 are not
    # available: leave them empty rather than invent them.
    p50 = p99 = float("nan")
(u0, s0), (u1, s1) = ([int(x) for x in t.split(",")] for t in (before, after))
n = max(served, 1)
user_us, sys_us = (u1 - u0) * 10_000 / n, (s1 - s0) * 10_000 / n  # 100 ticks per second
print(f"{name}\t{scenario}\t{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{user_us + sys_us:.2f}\t{int(rss) / 1024:.1f}\t{errors}\t{user_us:.2f}\t{sys_us:.2f}")
PY
}

IDLE=$work/idle.tsv
: > "$IDLE"
echo "backend alone (the ceiling)..."
PROXY_PID=$(pgrep -f "nginx -c $work/backend/nginx.conf" | head -1)
for scenario in $SCENARIOS; do
  [ "$scenario" = h2-64 ] && continue
  for rep in $(seq "$REPS"); do measure backend "$scenario" "$B1" "$rep"; done
done

PROXIES=(weir nginx haproxy weir-1000routes weir-notelemetry)
for p in "${PROXIES[@]}"; do
  start_proxy "$p"
  PROXY_PID=${PID[$p]}
  echo "$p	$(awk "BEGIN{printf \"%.1f\", $(rss_kib)/1024}")" >> "$IDLE"
done
for p in "${PROXIES[@]}"; do
  # Warm up: pools, caches, page faults.
  taskset -c "$LOAD_CPU" wrk -t1 -c64 -d2s "http://127.0.0.1:${PORT[$p]}/" >/dev/null 2>&1 || true
done
for rep in $(seq "$REPS"); do
  echo "round $rep of $REPS..."
  for scenario in $SCENARIOS; do
    for p in weir nginx haproxy; do
      PROXY_PID=${PID[$p]}
      port=${PORT[$p]}
      [ "$scenario" = h2-64 ] && port=${H2PORT[$p]}
      measure "$p" "$scenario" "$port" "$rep"
    done
  done
  # weir with 1,000 routes and with telemetry off, against weir's h1-64 of this round.
  [[ " $SCENARIOS " == *" h1-64 "* ]] || continue
  for p in weir-1000routes weir-notelemetry; do
    PROXY_PID=${PID[$p]}
    measure "$p" h1-64 "${PORT[$p]}" "$rep"
  done
done

python3 - "$RESULTS" "$IDLE" "$REPS" "$DURATION" "${H2_REQUESTS:-}" <<'PY'
import statistics, sys, collections, math
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
idle = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip())
reps, duration, h2_requests = sys.argv[3], sys.argv[4], sys.argv[5]
by = collections.defaultdict(list)
for name, sc, rps, p50, p99, cpu, rss, err, user, system in rows:
    by[(name, sc)].append((float(rps), float(p50), float(p99), float(cpu), float(rss), int(err), float(user), float(system)))
def med(key, i):
    vals = [r[i] for r in by[key] if not math.isnan(r[i])]
    return statistics.median(vals) if vals else float("nan")
print()
h2 = f"h2load: {int(h2_requests):,} requests each" if h2_requests else "h2load for as long"
print(f"weir load benchmark: median of {reps} interleaved rounds of {duration}s runs ({h2}); proxy on one CPU, load+backend on the other")
print()
print("| proxy | scenario | req/s | p50 ms | p99 ms | CPU µs/req | user / sys µs | idle RSS MiB | loaded RSS MiB | errors | req/s vs weir | CPU/req vs weir |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
order = ["backend", "weir", "nginx", "haproxy", "weir-1000routes", "weir-notelemetry"]
for sc in ["h1-64", "h1-256", "h2-64"]:
    for name in order:
        key = (name, sc)
        if key not in by:
            continue
        rps, p50, p99, cpu = (med(key, i) for i in range(4))
        user, system = med(key, 6), med(key, 7)
        rss = max(r[4] for r in by[key]); err = sum(r[5] for r in by[key])
        w = ("weir", sc)
        ratio_rps = rps / med(w, 0) if w in by else float("nan")
        ratio_cpu = cpu / med(w, 3) if w in by and name != "backend" else float("nan")
        fmt = lambda v, d=2: "-" if math.isnan(v) else f"{v:.{d}f}"
        split = f"{user:.1f} / {system:.1f}" if name != "backend" else "-"
        print(f"| {name} | {sc} | {rps:,.0f} | {fmt(p50, 3)} | {fmt(p99, 3)} | {fmt(cpu) if name != 'backend' else '-'} | {split} | {idle.get(name, '-')} | {rss:.1f} | {err} | {fmt(ratio_rps)} | {fmt(ratio_cpu)} |")
print()
def g(name, sc, i): return med((name, sc), i) if (name, sc) in by else float("nan")
# Goals only for the scenarios that ran: an unselected one has nothing to compare.
ran = {sc for (_, sc) in by}
print("goals (" + " / ".join(sc for sc in ["h1-64", "h1-256", "h2-64"] if sc in ran) + "):")
for sc in ["h1-64", "h1-256"]:
    if sc not in ran:
        continue
    best_cpu = min(g("nginx", sc, 3), g("haproxy", sc, 3))
    best_rps = max(g("nginx", sc, 0), g("haproxy", sc, 0))
    print(f"  {sc}: weir CPU/req {g('weir', sc, 3):.2f} µs vs best peer {best_cpu:.2f} µs -> ratio {g('weir', sc, 3)/best_cpu:.2f} (goal <= 0.90); "
          f"req/s {g('weir', sc, 0):,.0f} vs {best_rps:,.0f} -> {g('weir', sc, 0)/best_rps:.2f} (goal >= 1.00)")
if "h1-64" in ran:
    best_p99 = min(g("nginx", "h1-64", 2), g("haproxy", "h1-64", 2))
    print(f"  h1-64 p99: weir {g('weir', 'h1-64', 2):.3f} ms vs best peer {best_p99:.3f} ms (goal: no worse)")
if "h2-64" in ran:
    best_h2 = max(g("nginx", "h2-64", 0), g("haproxy", "h2-64", 0))
    print(f"  h2-64: weir {g('weir', 'h2-64', 0):,.0f} req/s vs best peer {best_h2:,.0f} -> {g('weir', 'h2-64', 0)/best_h2:.2f} (goal >= 1.00)")
if ("weir-1000routes", "h1-64") in by and ("weir-notelemetry", "h1-64") in by:
    print(f"  1,000 routes: {g('weir-1000routes', 'h1-64', 0)/g('weir', 'h1-64', 0):.3f} of 1-route req/s, CPU/req x{g('weir-1000routes', 'h1-64', 3)/g('weir', 'h1-64', 3):.3f} (goal: cost < 10%)")
    print(f"  telemetry on/off CPU/req: x{g('weir', 'h1-64', 3)/g('weir-notelemetry', 'h1-64', 3):.3f} (goal < 1.05)")
print(f"  memory: weir idle {idle.get('weir', '?')} MiB (goal < 10), loaded max {max(r[4] for k, v in by.items() if k[0]=='weir' for r in v):.1f} MiB (goal < 32)")
PY
