#!/usr/bin/env bash
# THE test command of singletable: runs `cargo test --workspace "$@"` against
# a DynamoDB Local started for this run (stopped again on exit), unless
# AWS_ENDPOINT_URL_DYNAMODB already points at one; for the whole workspace
# also scripts/check-layers.py and scripts/check-package.sh (with no
# argument, beside the tests: see below).
#
#   scripts/test.sh                      # whole workspace
#   scripts/test.sh -p singletable-tests # extra args go to cargo test (with
#                                        # -p/--package, --workspace is dropped)
#   scripts/test.sh -- --nocapture       # args for the test binaries
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

# shellcheck source=local-env.sh
source "$SCRIPT_DIR/local-env.sh"
use_dynamodb_local test

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
# The whole suite (no argument: what CI runs) also checks what needs no
# database: one-way layers with no import cycles (ARCHITECTURE.md), the
# derive's compile-fail cases (tests/tests/ui.rs, trybuild) and `cargo
# package` with verification of the three published crates. The last two
# are compilers' work (on a fresh clone the verification builds the AWS SDK
# twice more, with each crate's own features): they run niced beside the
# database tests, which wait on DynamoDB Local and leave CPU to spare,
# instead of after them. Their output follows the tests'.
checks_log=""
checks_pid=""
skip=()
if [[ ${#workspace[@]} -gt 0 && $# -eq 0 ]]; then
    # Everything built first, so that the checks' cargo runs find the
    # target dir unlocked and the tests start at once.
    cargo test --workspace --no-run || status=$?
    checks_log="$(mktemp)"
    (
        sleep 5 # the test run's own freshness check goes first
        echo "test.sh: checking layers"
        python3 "$SCRIPT_DIR/check-layers.py" || exit 1
        echo "test.sh: the derive's compile-fail cases (tests/tests/ui.rs)"
        cargo test -p singletable-tests --test ui || exit 1
        echo "test.sh: checking that the published crates package"
        "$SCRIPT_DIR/check-package.sh" || exit 1
    ) >"$checks_log" 2>&1 &
    checks_pid=$!
    renice -n 10 -p "$checks_pid" >/dev/null 2>&1 || true
    # Run above, not twice.
    skip=(-- --skip ui --exact)
fi
# --no-fail-fast: a failing test binary does not hide the results of the
# ones after it.
cargo test --no-fail-fast "${workspace[@]}" "$@" "${skip[@]}" || status=$?

if [[ -n "$checks_pid" ]]; then
    wait "$checks_pid" || status=1
    cat "$checks_log" >&2
    rm -f "$checks_log"
elif [[ ${#workspace[@]} -gt 0 ]]; then
    echo "test.sh: checking layers" >&2
    python3 "$SCRIPT_DIR/check-layers.py" || status=1
    echo "test.sh: checking that the published crates package" >&2
    "$SCRIPT_DIR/check-package.sh" || status=1
fi
exit "$status"
