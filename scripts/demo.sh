#!/usr/bin/env bash
# Runs the singletable demo against a DynamoDB Local started for this run
# (stopped again on exit), unless AWS_ENDPOINT_URL_DYNAMODB is already set.
#
#   scripts/demo.sh [demo args...]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

# shellcheck source=local-env.sh
source "$SCRIPT_DIR/local-env.sh"
use_dynamodb_local demo

cd "$REPO_ROOT"
status=0
cargo run --release -p singletable-examples --bin demo -- "$@" || status=$?
exit "$status"
