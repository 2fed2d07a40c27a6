#!/usr/bin/env bash
# The throughput harness's jobs on Apache Flink 2.3 (PeerJobs.java), in a local MiniCluster.
#
# usage: benches/peers/flink/run.sh [job | job=N ...]
#   jobs: chain nochain keyed backpressure async async-ordered keyed-ckpt window
#   (default: chain nochain keyed; PeerJobs.java describes each);
#   job=N runs N records (backpressure: N seconds); without =N the job's harness default.
# stdout: one line per job, the run with the median rate of REPEATS:
#   flink <job> records=<N> seconds=<s> rate=<rec/s> ...
# stderr: each run's line.
# env: REPEATS (3)
#      FLINK_PEER_HOME  work folder: venv, compiled classes, log config (/tmp/flink-rs-peers/flink)
#      FLINK_PEER_VENV  a venv holding apache-flink-libraries (default $FLINK_PEER_HOME/venv)
#      FLINK_PEER_HEAP  JVM heap flags ("-Xms4g -Xmx4g")
#      JOB_TIMEOUT      seconds before a run is killed (600)
# needs: python3 (venv + pip, network access to PyPI once), java and javac 17 or newer.
#
# The first run installs Flink's jars from PyPI (apache-flink-libraries, no dependencies:
# ~360 MB, the jars only, no Python runtime) into the venv and compiles PeerJobs.java
# against them; later runs reuse both (the job is recompiled when the source changes).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLINK_VERSION=2.3.0
WORK="${FLINK_PEER_HOME:-/tmp/flink-rs-peers/flink}"
VENV="${FLINK_PEER_VENV:-$WORK/venv}"
REPEATS="${REPEATS:-3}"
JOB_TIMEOUT="${JOB_TIMEOUT:-600}"
read -r -a HEAP <<<"${FLINK_PEER_HEAP:--Xms4g -Xmx4g}"

fail() { echo "flink/run.sh: $*" >&2; exit 1; }
for tool in python3 java javac; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
[[ "$REPEATS" =~ ^[1-9][0-9]*$ ]] || fail "REPEATS must be a positive number"

jobs=()
for arg in "${@:-chain nochain keyed}"; do
  for a in $arg; do
    case "${a%%=*}" in
      chain|nochain|keyed|backpressure|async|async-ordered|keyed-ckpt|window) ;;
      *) fail "unknown job '${a%%=*}' (chain nochain keyed backpressure async async-ordered keyed-ckpt window)" ;;
    esac
    [[ "$a" != *=* || "${a#*=}" =~ ^[1-9][0-9]*$ ]] || fail "bad count in '$a'"
    jobs+=("$a")
  done
done

# ---- Flink's jars, from PyPI
mkdir -p "$WORK"
lib_dir() { compgen -G "$VENV/lib/python3*/site-packages/pyflink/lib" | head -1 || true; }
LIB="$(lib_dir)"
if [[ -z "$LIB" || ! -f "$LIB/flink-dist-$FLINK_VERSION.jar" ]]; then
  echo "# installing apache-flink-libraries==$FLINK_VERSION (jars only) into $VENV" >&2
  [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --no-deps "apache-flink-libraries==$FLINK_VERSION" >&2
  LIB="$(lib_dir)"
fi
[[ -n "$LIB" && -f "$LIB/flink-dist-$FLINK_VERSION.jar" ]] || fail "no flink-dist-$FLINK_VERSION.jar under $VENV"
# flink-dist carries the runtime, the DataStream API and the sequence source; log4j logs.
CP="$LIB/flink-dist-$FLINK_VERSION.jar"
for jar in "$LIB"/log4j-*.jar; do CP="$CP:$jar"; done

# ---- compile (again only when the source changed)
CLASSES="$WORK/classes"
if [[ ! -f "$CLASSES/PeerJobs.class" || "$HERE/PeerJobs.java" -nt "$CLASSES/PeerJobs.class" ]]; then
  rm -rf "$CLASSES" && mkdir -p "$CLASSES"
  javac -nowarn -d "$CLASSES" -cp "$CP" "$HERE/PeerJobs.java"
fi

# Warnings and errors only, to stderr (the MiniCluster logs a lot at INFO).
LOG_CONFIG="$WORK/log4j2.properties"
cat >"$LOG_CONFIG" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
appender.err.name = err
appender.err.type = Console
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %d{HH:mm:ss} %-5p %c{1} - %m%n
# Notes about a full cluster's log files and tokens that a MiniCluster has no use for.
logger.web.name = org.apache.flink.runtime.webmonitor.WebMonitorUtils
logger.web.level = ERROR
logger.tokens.name = org.apache.flink.runtime.security.token
logger.tokens.level = ERROR
EOF
# The module openings Flink's own launcher passes to its JVMs (env.java.opts.all).
# keyed-ckpt checkpoints into $WORK/checkpoints (emptied before each run).
JVM=("${HEAP[@]}" -XX:+UseG1GC "-Dlog4j2.configurationFile=$LOG_CONFIG" "-Dpeer.checkpoints=$WORK/checkpoints")
for pkg in java.lang java.net java.io java.nio sun.nio.ch java.lang.reflect java.text java.time \
           java.util java.util.concurrent java.util.concurrent.atomic java.util.concurrent.locks; do
  JVM+=("--add-opens=java.base/$pkg=ALL-UNNAMED")
done

echo "# flink $FLINK_VERSION, $(java -version 2>&1 | head -1), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), repeats $REPEATS" >&2

# ---- run: each job REPEATS times, print the run with the median rate
for a in "${jobs[@]}"; do
  job="${a%%=*}"
  n=(); [[ "$a" == *=* ]] && n=("${a#*=}")
  runs=()
  for ((r = 1; r <= REPEATS; r++)); do
    rm -rf "$WORK/checkpoints"
    out="$(timeout "$JOB_TIMEOUT" java "${JVM[@]}" -cp "$CLASSES:$CP" PeerJobs "$job" "${n[@]}")" \
      || fail "$job run $r failed"
    out="$(grep "^flink $job " <<<"$out")" || fail "$job run $r printed no result line"
    echo "# run $r/$REPEATS: $out" >&2
    runs+=("$out")
  done
  printf '%s\n' "${runs[@]}" | sed -n 's/.* rate=\([0-9.]*\).*/\1 &/p' | sort -g \
    | sed -n "$(( (REPEATS + 1) / 2 ))p" | cut -d' ' -f2-
done
