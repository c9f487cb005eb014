#!/usr/bin/env bash
# Runs the worker-scaling benchmark (examples/bench/scaling.rs) in release
# mode: 1, 2 and 4 worker processes on one offline rekey through a proxy
# that adds a fixed latency to every request (8 ms by default), then the
# --max-wcu budget held by 4 workers. DynamoDB Local is started for the
# run (stopped on exit) unless AWS_ENDPOINT_URL_DYNAMODB is set.
#
#   scripts/bench-scaling.sh
#   scripts/bench-scaling.sh --items 20000 --latency-ms 8 --concurrency 2 --max-wcu 600
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

cd "$REPO_ROOT"
# The workers are the `singletable` binary next to the bench.
cargo build --release -p singletable-examples --bin bench-scaling -p singletable-migrate --bin singletable
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/bench-scaling"

# shellcheck source=local-env.sh
source "$SCRIPT_DIR/local-env.sh"
use_dynamodb_local bench-scaling

status=0
"$BIN" "$@" || status=$?
exit "$status"
