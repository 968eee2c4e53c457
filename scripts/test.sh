#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check and test.
# Usage: ./scripts/test.sh   (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "tools"
# clippy and rustfmt ship with the toolchain image; add them where they do not.
for component in clippy rustfmt; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

step "format"
cargo fmt --all -- --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "doctests"
cargo test --workspace --doc --locked --quiet

step "tests"
cargo nextest run --workspace --locked --no-fail-fast
