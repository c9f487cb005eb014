#!/usr/bin/env bash
# Runs the singletable demo against a DynamoDB Local started for this run
# (stopped again on exit), unless AWS_ENDPOINT_URL_DYNAMODB is already set.
#
#   scripts/demo.sh [demo args...]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
HARNESS="$SCRIPT_DIR/dynamodb-local.sh"

if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
    export DYNAMODB_LOCAL_INSTANCE="demo-$$"
    started=0
    cleanup() {
        "$HARNESS" stop || true
        local log="$REPO_ROOT/.dynamodb-local/$DYNAMODB_LOCAL_INSTANCE.log"
        # Keep the server log only when the server failed to come up.
        if [[ $started -eq 1 ]]; then
            rm -f "$log"
        elif [[ -f "$log" ]]; then
            echo "demo.sh: DynamoDB Local log kept in $log" >&2
        fi
    }
    trap cleanup EXIT
    "$HARNESS" install >/dev/null
    AWS_ENDPOINT_URL_DYNAMODB="$("$HARNESS" start)"
    started=1
    export AWS_ENDPOINT_URL_DYNAMODB
    echo "demo.sh: DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB" >&2
else
    echo "demo.sh: using AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" >&2
fi

# Access keys for DynamoDB Local may contain only letters and digits.
# (Static test credentials: never sends a developer's real keys anywhere.)
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE

cd "$REPO_ROOT"
status=0
cargo run --release -p singletable-examples --bin demo -- "$@" || status=$?
exit "$status"
