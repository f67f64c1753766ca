#!/usr/bin/env bash
# End-to-end telemetry check with a real Prometheus: weir's /metrics passes promtool,
# Prometheus scrapes it, and Flagger's built-in Istio queries (request-success-rate and
# request-duration, verbatim from fluxcd/flagger pkg/metrics/observers/istio.go) return
# the canary's success rate and p99.
#
# Needs: a release build of weir (target/release/weir), prometheus + promtool, wrk,
# curl, python3. Starts everything on free loopback ports and stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
WEIR=${WEIR:-${CARGO_TARGET_DIR:-target}/release/weir}
[ -x "$WEIR" ] || cargo build --release --locked
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*" >&2; exit 1; }

r=$(free_port); b=$(free_port); c=$(free_port); listen=$(free_port); admin=$(free_port); prom=$(free_port)
"$WEIR" upstream --listen 127.0.0.1:$r --name release --latency 2ms..4ms >/dev/null 2>&1 & pids+=($!)
"$WEIR" upstream --listen 127.0.0.1:$b --name baseline --latency 2ms..4ms >/dev/null 2>&1 & pids+=($!)
"$WEIR" upstream --listen 127.0.0.1:$c --name canary --latency 6ms --error-rate 0.05 >/dev/null 2>&1 & pids+=($!)
cat > "$work/weir.yaml" <<YAML
listen: 127.0.0.1:$listen
admin: 127.0.0.1:$admin
service: shop
namespace: prod
reporter: destination
workload: shop-gateway
destinations:
  release:  { endpoints: ["127.0.0.1:$r"], labels: { destination_workload: shop-primary } }
  baseline: { endpoints: ["127.0.0.1:$b"], labels: { destination_workload: shop-baseline } }
  canary:   { endpoints: ["127.0.0.1:$c"], labels: { destination_workload: shop-canary, destination_version: v2 } }
routes:
  - name: primary
    split: { release: 34, baseline: 33, canary: 33 }
YAML
"$WEIR" run --config "$work/weir.yaml" >"$work/weir.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$admin/ready" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$admin/ready" >/dev/null || fail "weir did not become ready: $(cat "$work/weir.log")"

cat > "$work/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: weir
    metrics_path: /metrics
    static_configs: [ { targets: ["127.0.0.1:$admin"] } ]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom" >"$work/prom.log" 2>&1 & pids+=($!)

# Steady load for 25 s: enough for several scrapes and a 20 s rate window.
wrk -t1 -c8 -d25s "http://127.0.0.1:$listen/" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!; pids+=($wrk_pid)

curl -sf "http://127.0.0.1:$admin/metrics" >"$work/metrics.txt"
set +e
promtool check metrics <"$work/metrics.txt" >"$work/promtool.txt" 2>&1
rc=$?
set -e
# Exit 3 means lint findings only; the one allowed is the base-unit warning Istio's
# own `_milliseconds` names always draw.
if [ $rc -ne 0 ] && { [ $rc -ne 3 ] || grep -v 'use base unit "seconds" instead of "milliseconds"' "$work/promtool.txt" | grep -q .; }; then
  cat "$work/promtool.txt"; fail "promtool check metrics (exit $rc)"
fi
echo "ok: promtool check metrics (only the milliseconds base-unit lint)"

wait $wrk_pid || true
sleep 2
query() {
  curl -sf --get "http://127.0.0.1:$prom/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
ns=prod; target=shop-canary; interval=20s
success=$(query "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"$ns\",destination_workload=~\"$target\",response_code!~\"5.*\"}[$interval])) / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"$ns\",destination_workload=~\"$target\"}[$interval])) * 100")
p99=$(query "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload_namespace=\"$ns\",destination_workload=~\"$target\"}[$interval])) by (le))")
echo "flagger request-success-rate for $target: $success"
echo "flagger request-duration p99 for $target: $p99 ms"
python3 - "$success" "$p99" <<'PY' || fail "Flagger queries returned implausible values"
import sys
success, p99 = float(sys.argv[1]), float(sys.argv[2])
# 5% injected errors; the canary answers in 6 ms, which Envoy's buckets put in (5, 10].
assert 90.0 <= success <= 99.0, success
assert 5.0 <= p99 <= 10.0, p99
PY
echo "ok: Flagger's Istio queries work unchanged against weir"
