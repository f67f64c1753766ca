#!/usr/bin/env bash
# End-to-end checks with real clients (curl, h2load, openssl, Prometheus, Python gRPC
# and websockets) against the release binary. Each script starts what it needs on free
# loopback ports and stops it by PID on exit.
set -euo pipefail
here="$(dirname "$0")"
cd "$here/../.."
cargo build --release --locked --quiet
bash "$here/core.sh"
bash "$here/tls.sh"
bash "$here/prometheus.sh"
bash "$here/canary_prometheus.sh"
