#!/usr/bin/env bash
# THE test command of singletable: runs `cargo test --workspace "$@"` against
# a DynamoDB Local started for this run (stopped again on exit), unless
# AWS_ENDPOINT_URL_DYNAMODB already points at one; then, for the whole
# workspace, scripts/check-layers.py and scripts/check-package.sh.
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
# --no-fail-fast: a failing test binary does not hide the results of the
# ones after it.
cargo test --no-fail-fast "${workspace[@]}" "$@" || status=$?

# The whole suite (no package picked) also checks the architecture and the
# packaging, which need no database: one-way layers with no import cycles
# (ARCHITECTURE.md), and `cargo package` with verification of the three
# published crates.
if [[ ${#workspace[@]} -gt 0 ]]; then
    echo "test.sh: checking layers" >&2
    python3 "$SCRIPT_DIR/check-layers.py" || status=1
    echo "test.sh: checking that the published crates package" >&2
    "$SCRIPT_DIR/check-package.sh" || status=1
fi
exit "$status"
