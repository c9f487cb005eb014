#!/usr/bin/env bash
# Runs the migrate apply benchmark (examples/bench/migrate.rs) in release
# mode against a DynamoDB Local started for this run (stopped again on
# exit), unless AWS_ENDPOINT_URL_DYNAMODB is already set.
#
#   scripts/bench-migrate.sh                      # 20,000 items, C = 4 and 8
#   scripts/bench-migrate.sh --concurrency 4 --rounds 3
#   scripts/bench-migrate.sh --memory 20000,200000
#   scripts/bench-migrate.sh --help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
HARNESS="$SCRIPT_DIR/dynamodb-local.sh"

cd "$REPO_ROOT"
# Build first, so the server is not kept waiting (nor warmed) by the compiler.
cargo build --release -p singletable-examples --bin bench-migrate
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/bench-migrate"

if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
    export DYNAMODB_LOCAL_INSTANCE="bench-migrate-$$"
    started=0
    cleanup() {
        "$HARNESS" stop || true
        local log="$REPO_ROOT/.dynamodb-local/$DYNAMODB_LOCAL_INSTANCE.log"
        # Keep the server log only when the server failed to come up.
        if [[ $started -eq 1 ]]; then
            rm -f "$log"
        elif [[ -f "$log" ]]; then
            echo "bench-migrate.sh: DynamoDB Local log kept in $log" >&2
        fi
    }
    trap cleanup EXIT
    "$HARNESS" install >/dev/null
    AWS_ENDPOINT_URL_DYNAMODB="$("$HARNESS" start)"
    started=1
    export AWS_ENDPOINT_URL_DYNAMODB
    # The benchmark reports the server's CPU time per contender.
    DYNAMODB_LOCAL_PID="$(cat "$REPO_ROOT/.dynamodb-local/$DYNAMODB_LOCAL_INSTANCE.pid")"
    export DYNAMODB_LOCAL_PID
    echo "bench-migrate.sh: DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB" >&2
else
    echo "bench-migrate.sh: using AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" >&2
fi

# Access keys for DynamoDB Local may contain only letters and digits.
# (Static test credentials: never sends a developer's real keys anywhere.)
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE

status=0
"$BIN" "$@" || status=$?
exit "$status"
