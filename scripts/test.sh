#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Starts whatever the integration tests need, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== services (Kafka-protocol brokers noida-db and tansu, PostgreSQL)"
state_file=$(./scripts/services.sh start --tansu)
trap './scripts/services.sh stop' EXIT
# shellcheck disable=SC1090
. "$state_file"
# A missing service is a failure under this command, never a skip.
export FLINK_RS_REQUIRE_SERVICES=1

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace
