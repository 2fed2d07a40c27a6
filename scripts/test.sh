#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Starts whatever the integration tests need, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace
