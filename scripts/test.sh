#!/usr/bin/env bash
# THE test command of singletable: runs `cargo test --workspace "$@"` against
# a DynamoDB Local started for this run (stopped again on exit), unless
# AWS_ENDPOINT_URL_DYNAMODB already points at one.
#
#   scripts/test.sh                      # whole workspace
#   scripts/test.sh -p singletable-tests # extra args go to cargo test (with
#                                        # -p/--package, --workspace is dropped)
#   scripts/test.sh -- --nocapture       # args for the test binaries
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
HARNESS="$SCRIPT_DIR/dynamodb-local.sh"

if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
    # Own state files, so a developer's `dynamodb-local.sh start` is untouched.
    export DYNAMODB_LOCAL_INSTANCE="test-$$"
    started=0
    cleanup() {
        "$HARNESS" stop || true
        local log="$REPO_ROOT/.dynamodb-local/$DYNAMODB_LOCAL_INSTANCE.log"
        # Keep the server log only when the server failed to come up.
        if [[ $started -eq 1 ]]; then
            rm -f "$log"
        elif [[ -f "$log" ]]; then
            echo "test.sh: DynamoDB Local log kept in $log" >&2
        fi
    }
    trap cleanup EXIT
    "$HARNESS" install >/dev/null
    AWS_ENDPOINT_URL_DYNAMODB="$("$HARNESS" start)"
    started=1
    export AWS_ENDPOINT_URL_DYNAMODB
    echo "test.sh: DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB" >&2
else
    echo "test.sh: using AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" >&2
fi

# Access keys for DynamoDB Local may contain only letters and digits.
# (Static test credentials: never sends a developer's real keys anywhere.)
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE

cd "$REPO_ROOT"
status=0
# `--workspace` unless the caller picked packages (`-p x`, `--package x`,
# `--manifest-path ...`): cargo would otherwise still test every member.
workspace=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p?* | --package | --package=* | --manifest-path | --manifest-path=* | --workspace | --all)
            workspace=()
            break
            ;;
    esac
done
cargo test "${workspace[@]}" "$@" || status=$?
exit "$status"
