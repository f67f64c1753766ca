#!/usr/bin/env bash
# End-to-end checks with real clients against the release binary. Filled in by the
# issues that need them; each check starts what it needs on loopback ports and stops it.
set -euo pipefail
echo "e2e: no checks yet"
bash "$(dirname "$0")/tls.sh"
