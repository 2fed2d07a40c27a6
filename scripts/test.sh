#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Starts whatever the integration tests need, in a state directory of its own (so a
# manual `scripts/services.sh start` keeps running), then runs every test of the
# workspace. Each step prints a line with the time elapsed since the start; cargo's
# and the services script's own output is shown as it comes.
set -euo pipefail
cd "$(dirname "$0")/.."

elapsed() {
    local s=$SECONDS
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}
step() { echo "== [$(elapsed)] $*"; }

step "services (Kafka-protocol brokers noida-db and tansu, PostgreSQL, headless Chromium; installs what is missing)"
# Under /tmp, not $TMPDIR: the database runs as the `postgres` user, who must reach it.
FLINK_RS_SERVICES_DIR=$(mktemp -d /tmp/flink-rs-test-services.XXXXXX)
export FLINK_RS_SERVICES_DIR
trap './scripts/services.sh stop' EXIT
state_file=$(./scripts/services.sh start --tansu)
# shellcheck disable=SC1090
. "$state_file"
# A missing service is a failure under this command, never a skip.
export FLINK_RS_REQUIRE_SERVICES=1

step "format: cargo fmt --all -- --check"
cargo fmt --all -- --check
step "lints: cargo clippy --workspace --all-targets -- -D warnings (builds the workspace first)"
cargo clippy --workspace --all-targets -- -D warnings
step "tests: cargo test --workspace (builds the tests first; unit, integration and doc tests)"
cargo test --workspace
step "all passed"
