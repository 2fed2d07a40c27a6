#!/usr/bin/env bash
# The throughput harness's chain, nochain and keyed jobs on timely-dataflow 0.32 (src/main.rs
# says how each maps onto timely).
#
# usage: benches/peers/timely/run.sh [job | job=N ...]
#   jobs: chain nochain keyed (default: all three); job=N runs N records, without =N the
#   harness's default (chain 200 M, nochain 50 M, keyed 50 M).
# stdout: one line per job, the run with the median rate of REPEATS:
#   timely <job> records=<N> seconds=<s> rate=<rec/s> ...
# stderr: each run's line.
# env: REPEATS (3)   TIMELY_PEER_TARGET  cargo target dir (/tmp/flink-rs-peers/timely-target)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGET="${TIMELY_PEER_TARGET:-/tmp/flink-rs-peers/timely-target}"
REPEATS="${REPEATS:-3}"
fail() { echo "timely/run.sh: $*" >&2; exit 1; }
[[ "$REPEATS" =~ ^[1-9][0-9]*$ ]] || fail "REPEATS must be a positive number"
[[ $# -gt 0 ]] || set -- chain nochain keyed

for a in "$@"; do
  case "${a%%=*}" in chain|nochain|keyed) ;; *) fail "unknown job '${a%%=*}' (chain nochain keyed)" ;; esac
  [[ "$a" != *=* || "${a#*=}" =~ ^[1-9][0-9]*$ ]] || fail "bad count in '$a'"
done

# Not --locked: the lock file also holds flink-core's dependencies, which move with the engine.
CARGO_TARGET_DIR="$TARGET" cargo build --quiet --release --manifest-path "$HERE/Cargo.toml" >&2
BIN="$TARGET/release/timely-peer"
echo "# timely 0.32, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), repeats $REPEATS" >&2

for a in "$@"; do
  job="${a%%=*}"
  n=(); [[ "$a" == *=* ]] && n=("${a#*=}")
  runs=()
  for ((r = 1; r <= REPEATS; r++)); do
    out="$("$BIN" "$job" "${n[@]}")" || fail "$job run $r failed"
    echo "# run $r/$REPEATS: $out" >&2
    runs+=("$out")
  done
  printf '%s\n' "${runs[@]}" | sed -n 's/.* rate=\([0-9.]*\).*/\1 &/p' | sort -g \
    | sed -n "$(( (REPEATS + 1) / 2 ))p" | cut -d' ' -f2-
done
