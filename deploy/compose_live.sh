#!/usr/bin/env bash
# Runs docker/compose.yaml's services the way compose would, without Docker (CI has no
# daemon and no image registry), and checks that the kit works together:
#
#   sudo bash deploy/compose_live.sh      # root: it makes network and mount namespaces
#
# In a network namespace of its own (nothing it starts is reachable from outside, and
# nothing outside is in its way), each service gets a loopback address and its compose
# name in /etc/hosts; in a mount namespace, the paths compose mounts are mounted at the
# same places (docker/weir at /etc/weir, read-only; a fresh /run/weir for the token;
# /etc/prometheus with prometheus.yml and the alert rules). The commands are read from
# compose.yaml and run as they are written there, with the release binary standing in
# for the image's /usr/local/bin/weir; the one change is that each upstream listens on
# its own address rather than 0.0.0.0 (in compose each has its own network namespace).
# weir runs as the image's user, 10001. Prometheus is Debian's (2.42; the image pins
# 2.53); Grafana is not run (no package): its dashboard's queries are run against this
# Prometheus instead.
#
# Checks: requests through weir reach the upstreams; Prometheus scrapes weir; every alert
# rule loads and evaluates without error on the real series; every PromQL expression of
# the Grafana dashboard returns data, the traffic share following the weights; the admin
# token from the admin-token service guards writes and /config, and a weights change with
# it moves the traffic. Prints `compose live: N passed, N failed` last.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WEIR=${WEIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release/weir}

if [ -z "${WEIR_COMPOSE_LIVE_NS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "compose_live.sh: needs root (network and mount namespaces)" >&2; exit 1; }
  [ -x "$WEIR" ] || cargo build --release --locked --quiet
  exec unshare --net --mount --propagation private env WEIR_COMPOSE_LIVE_NS=1 WEIR="$WEIR" bash "$0" "$@"
fi

ip link set lo up
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-compose.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
show_logs() { for l in "$work"/*.log; do echo "---- $(basename "$l")"; tail -n 15 "$l"; done; }

# The services' commands, from compose.yaml (JSON arrays, one service a line).
python3 - docker/compose.yaml > "$work/services.tsv" <<'PY'
import json, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for name, s in c["services"].items():
    print(f"{name}\t{json.dumps(s.get('entrypoint'))}\t{json.dumps(s.get('command'))}")
PY
command_of() { awk -F'\t' -v s="$1" '$1 == s { print $3 }' "$work/services.tsv"; }
args_of() { command_of "$1" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))'; }

# One loopback address per service, under its compose name.
declare -A ADDR=([weir]=127.0.0.10 [release]=127.0.0.11 [baseline]=127.0.0.12 [canary]=127.0.0.13 [prometheus]=127.0.0.14)
for s in "${!ADDR[@]}"; do echo "${ADDR[$s]} $s"; done > "$work/hosts"
echo "127.0.0.1 localhost" >> "$work/hosts"
mount --bind "$work/hosts" /etc/hosts
# The image's binary, where weir's user can run it.
install -m 755 "$WEIR" "$work/weir"
# compose's mounts: ./weir -> /etc/weir (ro), a fresh volume at /run/weir,
# ./prometheus/prometheus.yml and the rules -> /etc/prometheus.
mkdir -p /etc/weir /run/weir /etc/prometheus
mount --bind "$ROOT/docker/weir" /etc/weir
mount -o remount,bind,ro /etc/weir
mount -t tmpfs -o mode=755 tmpfs /run/weir
mkdir -p "$work/etc-prometheus"
cp docker/prometheus/prometheus.yml deploy/prometheus/weir-alerts.yml "$work/etc-prometheus/"
mount --bind "$work/etc-prometheus" /etc/prometheus

# admin-token: its command as written (as root, as `user: "0:0"` says).
mapfile -t token_cmd < <(args_of admin-token)
if sh -c "${token_cmd[0]}" && [ -s /run/weir/admin-token ] \
   && [ "$(stat -c '%u %a' /run/weir/admin-token)" = "10001 600" ]; then
  ok "admin-token wrote a token readable by weir's user only"
else
  bad "admin-token: $(ls -l /run/weir 2>&1)"
fi

# The upstreams, then weir as user 10001, then Prometheus and the load.
for s in release baseline canary; do
  mapfile -t args < <(args_of "$s")
  args=("${args[@]/0.0.0.0:8080/${ADDR[$s]}:8080}")
  "$work/weir" "${args[@]}" >"$work/$s.log" 2>&1 &
  pids+=($!)
done
mapfile -t args < <(args_of weir)
setpriv --reuid=10001 --regid=10001 --clear-groups "$work/weir" "${args[@]}" >"$work/weir.log" 2>&1 &
pids+=($!)
mapfile -t args < <(args_of prometheus)
prometheus "${args[@]}" --storage.tsdb.path="$work/prometheus-data" \
  --web.listen-address="${ADDR[prometheus]}:9090" >"$work/prometheus.log" 2>&1 &
pids+=($!)

ready=""
for _ in $(seq 100); do
  curl -sf http://weir:15000/ready >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.1
done
if [ -n "$ready" ]; then ok "weir (as user 10001) is ready on weir:15000 with docker/weir/weir.yaml"; else bad "weir did not become ready"; show_logs; exit 1; fi

mapfile -t load_cmd < <(args_of load)
sh -c "${load_cmd[0]}" >/dev/null 2>&1 &
pids+=($!)

seen=$(for _ in $(seq 40); do curl -s -D - -o /dev/null http://weir:15001/ | tr -d '\r' | awk -F': ' 'tolower($1) == "x-weir-upstream" { print $2 }'; done | sort -u | tr '\n' ' ')
if [ "$seen" = "baseline canary release " ] || [ "$seen" = "canary release " ] || [ "$seen" = "baseline release " ] || [ "$seen" = "release " ]; then
  ok "requests through weir:15001 reach the upstreams by name ($seen)"
else
  bad "requests through weir:15001: upstreams seen: '$seen'"
fi

token=$(cat /run/weir/admin-token)
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code http://weir:15000/config)" = 401 ] && ok "GET /config without the token: 401" || bad "GET /config without the token was not refused"
[ "$(code -H "Authorization: Bearer $token" http://weir:15000/config)" = 200 ] && ok "GET /config with the token: 200" || bad "GET /config with the token"
[ "$(code http://weir:15000/metrics)" = 200 ] && ok "GET /metrics needs no token" || bad "GET /metrics"

prom=http://prometheus:9090
query() { curl -s --get "$prom/api/v1/query" --data-urlencode "query=$1"; }
# Scrapes every 5 s: wait for a few, so rates over 1m have points.
for _ in $(seq 60); do
  [ "$(query 'up{job="weir"}' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")')" = 1 ] && break
  sleep 0.5
done
[ "$(query 'up{job="weir"}' | grep -c '"1"' || true)" -ge 1 ] && ok "Prometheus scrapes weir:15000 (up == 1)" || { bad "Prometheus does not scrape weir"; show_logs; }
sleep 22

python3 deploy/check_kit.py dashboard "$work" >/dev/null
results=$(python3 - "$prom" "$work/dashboard-exprs.json" <<'PY'
import json, sys, urllib.parse, urllib.request
prom, path = sys.argv[1], sys.argv[2]
def q(expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
for e in json.load(open(path)):
    r = q(e["expr"])
    n = len(r["data"]["result"]) if r.get("status") == "success" else -1
    # The annotation shows config changes only: none yet, so no series is right.
    want_empty = e["title"].startswith("annotation")
    good = (n == 0) if want_empty else (n > 0)
    print(("ok   " if good else "FAIL ") + f"dashboard {e['title']}: {n} series: {e['expr']}")
PY
)
echo "$results"
passed=$((passed + $(grep -c '^ok ' <<<"$results" || true)))
failed=$((failed + $(grep -c '^FAIL' <<<"$results" || true)))

# Every alert rule loaded and evaluated without error on the real series.
rules=$(curl -s "$prom/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
print(len(rules), sum(r["health"] == "ok" for r in rules), " ".join(r["name"] for r in rules if r["health"] != "ok"))')
read -r total healthy unhealthy <<<"$rules"
want=$(grep -c '^\s*- alert:' deploy/prometheus/weir-alerts.yml)
[ "$total" = "$want" ] && [ "$healthy" = "$total" ] && ok "Prometheus evaluates all $total alert rules without error" \
  || bad "alert rules: $total loaded (want $want), $healthy healthy; not: $unhealthy"

share() { # share DESTINATION: its share of the last 15 s of requests
  query "sum by (destination) (rate(weir_responses_total{destination=\"$1\"}[15s])) / scalar(sum(rate(weir_responses_total[15s])))" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(float(r[0]["value"][1]) if r else -1)'
}
release=$(share release)
python3 -c "import sys; sys.exit(0 if 0.65 <= $release <= 0.95 else 1)" \
  && ok "the release's share of the traffic follows its weight of 80 ($release)" || bad "release share $release, weight 80"

# A weights change with the token, as README.md's deploy kit section does it.
split='{"release": 0, "baseline": 50, "canary": 50}'
[ "$(code -X PUT -d "$split" http://weir:15000/routes/primary/split)" = 401 ] && ok "PUT a split without the token: 401" || bad "PUT without the token was not refused"
[ "$(code -X PUT -H "Authorization: Bearer $token" -d "$split" http://weir:15000/routes/primary/split)" = 200 ] \
  && ok "PUT a split with the token: 200" || bad "PUT with the token"
sleep 18
release=$(share release)
python3 -c "import sys; sys.exit(0 if $release == 0 else 1)" \
  && ok "after the change the release gets no traffic (share $release in Prometheus)" || bad "release share $release after its weight went to 0"
weight=$(query 'weir_route_weight{route="primary",destination="canary"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
[ "$weight" = 50 ] && ok "weir_route_weight shows the new weight in Prometheus" || bad "weir_route_weight canary: $weight"

[ "$failed" = 0 ] || show_logs
echo "compose live: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
