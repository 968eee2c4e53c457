#!/usr/bin/env bash
# Builds every Lambda function for arm64 (cargo-lambda with its zig), zips each, and checks
# that no zip exceeds the size budget. Prints a Markdown table of the zipped sizes.
# Usage: ./scripts/lambda-build.sh        (needs cargo-lambda: pip install cargo-lambda)
set -euo pipefail
cd "$(dirname "$0")/.."

budget=$((2500 * 1024))
functions=$(ls functions)
packages=()
for f in $functions; do packages+=(-p "$f"); done

# The release profile, tuned for size for the functions only (clinicflow-local keeps the
# faster-building settings of Cargo.toml): smallest code, whole-program LTO, one codegen
# unit, abort on panic (handlers never panic: unwrap is denied by clippy). SAM and CDK
# builds set the same variables.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort

# Only the function packages: building clinicflow-local or the tests in the same run would
# unify their features (SQLite) into every function.
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"

printf '| function | zipped (arm64) |\n|---|---:|\n'
over=0
for f in $functions; do
  zip="target/lambda/$f/bootstrap.zip"
  size=$(stat -c %s "$zip")
  printf '| `%s` | %s KiB |\n' "$f" "$((size / 1024))"
  if [ "$size" -gt "$budget" ]; then
    echo "error: $zip is $size bytes, over the 2.5 MB budget" >&2
    over=1
  fi
done
exit "$over"
