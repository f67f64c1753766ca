#!/usr/bin/env bash
# End-to-end canary judgement through a real Prometheus: weir splits a load between a
# healthy baseline and a canary with 20 % errors and slower answers, Prometheus scrapes
# weir every second, and `weir canary` with `prometheus` metrics (Flagger-style success
# rate, p99 from Istio's histogram, and Fisher's exact test on error counts) must roll
# the canary back, having set and then restored the weights.
#
# Needs: a release build of weir (target/release/weir), prometheus, curl, python3.
# Starts everything on free loopback ports and stops it on exit.
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
"$WEIR" upstream --listen 127.0.0.1:$c --name canary --latency 12ms..20ms --error-rate 0.2 >/dev/null 2>&1 & pids+=($!)
cat > "$work/weir.yaml" <<YAML
listen: 127.0.0.1:$listen
admin: 127.0.0.1:$admin
service: shop
namespace: prod
reporter: destination
destinations:
  release:  { endpoints: ["127.0.0.1:$r"] }
  baseline: { endpoints: ["127.0.0.1:$b"] }
  canary:   { endpoints: ["127.0.0.1:$c"] }
routes:
  - name: primary
    split: { release: 100 }
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
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$prom/-/ready" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$prom/-/ready" >/dev/null || fail "Prometheus did not become ready: $(tail -5 "$work/prom.log")"

# A steady load for at most 60 s (stopped by the cleanup once the rollout ends).
python3 - "$listen" >/dev/null 2>&1 <<'PY' & pids+=($!)
import http.client, sys, time
end = time.time() + 60
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
while time.time() < end:
    try:
        conn.request("GET", "/"); conn.getresponse().read()
    except Exception:
        conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
    time.sleep(0.004)
PY

sel='reporter="destination",destination_workload_namespace="prod"'
cat > "$work/canary.yaml" <<YAML
target: { admin: ["http://127.0.0.1:$admin"], route: primary }
interval: 3s
stages:
  - { weights: { release: 50, baseline: 25, canary: 25 }, warmup: 3s, duration: 30s }
min_points: 5
groups: { istio: 100 }
metrics:
  - name: success-rate
    group: istio
    source: prometheus
    prometheus: http://127.0.0.1:$prom
    query: sum(rate(istio_requests_total{$sel,destination_workload="shop-{{scope}}",response_code!~"5.*"}[{{interval}}])) / sum(rate(istio_requests_total{$sel,destination_workload="shop-{{scope}}"}[{{interval}}]))
    direction: decrease
  - name: p99-latency
    group: istio
    source: prometheus
    prometheus: http://127.0.0.1:$prom
    query: histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{$sel,destination_workload="{{ scope }}"}[{{interval}}])) by (le))
    scopes: { baseline: shop-baseline, canary: shop-canary }
    direction: increase
  - name: errors
    group: istio
    source: prometheus
    prometheus: http://127.0.0.1:$prom
    test: proportions
    query: sum(increase(istio_requests_total{$sel,destination_workload="shop-{{scope}}",response_code=~"5.*"}[{{interval}}]))
    total_query: sum(increase(istio_requests_total{$sel,destination_workload="shop-{{scope}}"}[{{interval}}]))
    direction: increase
YAML
set +e
timeout 120 "$WEIR" canary --config "$work/canary.yaml" --report "$work/report" >"$work/canary.out" 2>&1
rc=$?
set -e
cat "$work/canary.out"
[ $rc -eq 1 ] || fail "weir canary exited $rc, expected 1 (rolled back)"
split=$(curl -sf "http://127.0.0.1:$admin/routes/primary/split")
python3 - "$work/report/report.json" "$split" <<'PY' || fail "the report does not show a judgement through Prometheus"
import json, sys
r = json.load(open(sys.argv[1]))
split = json.loads(sys.argv[2])["split"]
assert {k: v for k, v in split.items() if v} == {"release": 100}, split
assert r["outcome"]["result"] == "rolled_back", r["outcome"]
whys = [c["why"] for c in r["weight_changes"]]
assert whys == ["stage 1", "rollback"], whys
last = r["judgements"][-1]["judgement"]
by_name = {m["name"]: m for m in last["metrics"]}
# Points came through Prometheus: most of them are numbers.
for name in ("success-rate", "p99-latency"):
    pts = [p["value"] for p in r["points"][name]["canary"]]
    assert sum(v is not None for v in pts) >= len(pts) - 1, (name, pts)
assert by_name["success-rate"]["classification"] == "Low", by_name["success-rate"]
assert by_name["p99-latency"]["classification"] == "High", by_name["p99-latency"]
assert by_name["errors"]["classification"] == "High", by_name["errors"]
assert "Fisher" in by_name["errors"]["reason"], by_name["errors"]["reason"]
print("canary success rate %.3f vs baseline %.3f; p99 %.1f vs %.1f ms; errors %s" % (
    by_name["success-rate"]["canary"]["mean"], by_name["success-rate"]["baseline"]["mean"],
    by_name["p99-latency"]["canary"]["mean"], by_name["p99-latency"]["baseline"]["mean"],
    by_name["errors"]["reason"].split(";")[0]))
PY
echo "ok: weir canary judged through a real Prometheus and rolled the canary back"
