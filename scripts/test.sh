#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check and test.
# Usage: ./scripts/test.sh   (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add clippy rustfmt >/dev/null 2>&1 || true
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

step "format"
cargo fmt --all -- --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo nextest run --workspace --locked --no-fail-fast
# nextest does not run doctests
cargo test --workspace --doc --locked
