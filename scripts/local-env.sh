# Sourced by demo.sh, test.sh and bench-migrate.sh (which set SCRIPT_DIR and
# REPO_ROOT): points the AWS SDK at a DynamoDB Local started for this run and
# stopped again on exit, unless AWS_ENDPOINT_URL_DYNAMODB already names one.
#
#   use_dynamodb_local NAME    NAME: the calling script, for messages and
#                              for its own state files (.dynamodb-local/NAME-PID.*)

use_dynamodb_local() {
    _local_name="$1"
    local harness="$SCRIPT_DIR/dynamodb-local.sh"
    if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
        # Own state files, so a developer's `dynamodb-local.sh start` is untouched.
        export DYNAMODB_LOCAL_INSTANCE="$_local_name-$$"
        _local_started=0
        trap _stop_dynamodb_local EXIT
        "$harness" install >/dev/null
        AWS_ENDPOINT_URL_DYNAMODB="$("$harness" start)"
        _local_started=1
        export AWS_ENDPOINT_URL_DYNAMODB
        # Benchmarks report the server's CPU time.
        DYNAMODB_LOCAL_PID="$(cat "$REPO_ROOT/.dynamodb-local/$DYNAMODB_LOCAL_INSTANCE.pid")"
        export DYNAMODB_LOCAL_PID
        echo "$_local_name.sh: DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB" >&2
    else
        echo "$_local_name.sh: using AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" >&2
    fi
    # Access keys for DynamoDB Local may contain only letters and digits.
    # (Static test credentials: never sends a developer's real keys anywhere.)
    export AWS_ACCESS_KEY_ID=local
    export AWS_SECRET_ACCESS_KEY=local
    export AWS_REGION=us-east-1
    unset AWS_SESSION_TOKEN AWS_PROFILE
}

_stop_dynamodb_local() {
    "$SCRIPT_DIR/dynamodb-local.sh" stop || true
    local log="$REPO_ROOT/.dynamodb-local/$DYNAMODB_LOCAL_INSTANCE.log"
    # Keep the server log only when the server failed to come up.
    if [[ $_local_started -eq 1 ]]; then
        rm -f "$log"
    elif [[ -f "$log" ]]; then
        echo "$_local_name.sh: DynamoDB Local log kept in $log" >&2
    fi
}
