#!/usr/bin/env bash
# Runs the migrate apply benchmark (examples/bench/migrate.rs) in release
# mode against a DynamoDB Local started for this run (stopped again on
# exit), unless AWS_ENDPOINT_URL_DYNAMODB is already set.
#
#   scripts/bench-migrate.sh                      # 20,000 items, C = 4 and 8, with
#                                                 # the online apply under 200 writes/s
#   scripts/bench-migrate.sh --skip-online        # quiet apply vs hand-written only
#   scripts/bench-migrate.sh --skip-mor           # the online apply without migrate-on-read
#   scripts/bench-migrate.sh --items 3000 --warmup 1000 --rounds 1 --concurrency 4 --skip-naive
#   scripts/bench-migrate.sh --concurrency 4 --rounds 3
#   scripts/bench-migrate.sh --memory 20000,200000
#   scripts/bench-migrate.sh --help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

cd "$REPO_ROOT"
# Build first, so the server is not kept waiting (nor warmed) by the compiler.
cargo build --release -p singletable-examples --bin bench-migrate
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/bench-migrate"

# shellcheck source=local-env.sh
source "$SCRIPT_DIR/local-env.sh"
use_dynamodb_local bench-migrate

status=0
"$BIN" "$@" || status=$?
exit "$status"
