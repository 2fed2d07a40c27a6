#!/usr/bin/env bash
# One sitting of flink-rs, Apache Flink 2.3 and timely-dataflow 0.32 on the harness's jobs:
# every repeat runs each job once on each engine, the engines' order rotating from repeat
# to repeat (so a slow patch of a shared machine does not land on one engine only), then
# prints the medians and the ratios as a Markdown table.
#
# usage: benches/peers/sitting.sh [job | job=N ...]
#   jobs: chain nochain keyed (all three engines); backpressure async async-ordered, and
#   keyed-ckpt window once the harness has them (flink-rs and Flink; timely has no such
#   job). Default: chain nochain keyed.
#   job=N: N records (backpressure: seconds); without =N each engine's default, which
#   is the same on all three (chain 200 M, nochain 50 M, keyed 50 M).
# stdout: the table. stderr: every run's line, the machine and its load.
# env: REPEATS (3); those of flink/run.sh (FLINK_PEER_HOME, ...) and timely/run.sh
#      (TIMELY_PEER_TARGET); CARGO_TARGET_DIR for the flink-rs build.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REPEATS="${REPEATS:-3}"
TIMELY_TARGET="${TIMELY_PEER_TARGET:-/tmp/flink-rs-peers/timely-target}"
fail() { echo "sitting.sh: $*" >&2; exit 1; }
[[ "$REPEATS" =~ ^[1-9][0-9]*$ ]] || fail "REPEATS must be a positive number"
[[ $# -gt 0 ]] || set -- chain nochain keyed
for a in "$@"; do
  case "${a%%=*}" in chain|nochain|keyed|backpressure|async|async-ordered|keyed-ckpt|window) ;;
    *) fail "unknown job '${a%%=*}' (chain nochain keyed backpressure async async-ordered keyed-ckpt window)" ;; esac
  [[ "$a" != *=* || "${a#*=}" =~ ^[1-9][0-9]*$ ]] || fail "bad count in '$a'"
done

# ---- build everything first, so that no build runs inside the sitting
echo "# building flink-rs (release) and the timely peer" >&2
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p benches --bin throughput >&2
FLINK_RS="$(cargo metadata --quiet --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/throughput"
CARGO_TARGET_DIR="$TIMELY_TARGET" cargo build --quiet --release \
  --manifest-path "$HERE/timely/Cargo.toml" >&2
TIMELY="$TIMELY_TARGET/release/timely-peer"
# Installs Flink's jars and compiles the job on first use; a tiny run checks it works.
REPEATS=1 "$HERE/flink/run.sh" chain=1000 >/dev/null 2>&1 || fail "the Flink peer does not run: try benches/peers/flink/run.sh chain=1000"

echo "# sitting $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# run <engine> <job> [N]: that engine's result line for one run of the job
run() {
  local engine=$1 job=$2; shift 2
  case "$engine" in
    flink-rs) "$FLINK_RS" "$job" "$@" ;;
    timely) "$TIMELY" "$job" "$@" ;;
    flink) REPEATS=1 "$HERE/flink/run.sh" "$job${1:+=$1}" 2>/dev/null ;;
  esac | grep -m1 "^$engine $job "
}

declare -A rates records
engines=(flink-rs flink timely)
for ((r = 0; r < REPEATS; r++)); do
  for a in "$@"; do
    job="${a%%=*}"; n=(); [[ "$a" == *=* ]] && n=("${a#*=}")
    for ((e = 0; e < ${#engines[@]}; e++)); do
      engine="${engines[(e + r) % ${#engines[@]}]}"
      case "$engine/$job" in timely/chain|timely/nochain|timely/keyed|flink*) ;; timely/*) continue ;; esac
      line="$(run "$engine" "$job" "${n[@]}")" || fail "$engine $job failed"
      echo "# repeat $((r + 1))/$REPEATS, load $(cut -d' ' -f1 /proc/loadavg): $line" >&2
      rates[$engine/$job]+="$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$line") "
      records[$job]="$(sed -n 's/.* records=\([0-9]*\).*/\1/p' <<<"$line")"
    done
  done
done

# median of the numbers on stdin (empty for none; an even count takes the lower middle)
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
human() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else if (v >= 1e9) printf "%.2f G", v/1e9;
  else if (v >= 1e6) printf "%.1f M", v/1e6; else printf "%.1f K", v/1e3 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2fx", a/b }'; }

echo "| job | records | flink-rs rec/s | Flink 2.3 rec/s | timely 0.32 rec/s | flink-rs / Flink | flink-rs / timely |"
echo "|---|---|---|---|---|---|---|"
for a in "$@"; do
  job="${a%%=*}"
  ours="$(median <<<"${rates[flink-rs/$job]:-}")"
  flink="$(median <<<"${rates[flink/$job]:-}")"
  timely="$(median <<<"${rates[timely/$job]:-}")"
  echo "| $job | ${records[$job]} | $(human "$ours") | $(human "$flink") | $(human "$timely") | $(ratio "$ours" "$flink") | $(ratio "$ours" "$timely") |"
done
echo "Median of $REPEATS runs per engine; runs: $(for k in "${!rates[@]}"; do printf '%s: %s; ' "$k" "${rates[$k]% }"; done)" >&2
