#!/usr/bin/env bash
# Runs weir's fuzz targets, each for a set time, on the corpora kept in fuzz/corpus/,
# and prints what libFuzzer found. Not part of CI (it takes as long as you give it).
#
#   bash fuzz/run.sh                         # every target, 60 s each
#   SECONDS_EACH=3600 bash fuzz/run.sh       # an hour each
#   TARGETS="chunked http1_request" bash fuzz/run.sh
#
# The targets (fuzz_targets/, their checks in src/fuzz.rs):
#   http1_request  the request-head parser, and the head weir writes upstream from it
#   chunked        the chunked decoder against a lenient reference decoder
#   config         the config loader and validator
#   admin_weights  the weights API's JSON body
#   certificate    certificate reading (x509-parser)
#
# cargo-fuzz builds with sanitizer flags that only nightly Rust accepts; this machine
# has the stable toolchain only, so RUSTC_BOOTSTRAP=1 lets stable accept them. A crash
# leaves its input in fuzz/artifacts/TARGET/ and the run stops with its backtrace.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
seconds=${SECONDS_EACH:-60}
targets=${TARGETS:-"http1_request chunked config admin_weights certificate"}
mkdir -p logs
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  cargo fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    > "logs/$t.log" 2>&1 || { echo "$t: FAILED, see fuzz/logs/$t.log and fuzz/artifacts/$t/"; tail -40 "logs/$t.log"; exit 1; }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE" "logs/$t.log" | sed "s/^/  /"
done
# Keep the corpora small: only inputs that add coverage.
if [ -n "${MINIMIZE:-}" ]; then
  for t in $targets; do cargo fuzz cmin -O "$t" "corpus/$t" > "logs/$t.cmin.log" 2>&1; done
fi
