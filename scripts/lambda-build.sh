#!/usr/bin/env bash
# Builds every Lambda function, and the benchmarks' hello-world floor (bench/floor), for
# arm64 (cargo-lambda with its zig), zips each, and checks that no zip exceeds the 2.5 MB
# budget. Prints a Markdown table of the zipped sizes.
# Usage: ./scripts/lambda-build.sh        (needs cargo-lambda: pip install cargo-lambda)
#        ./scripts/lambda-build.sh --native DIR [PACKAGE...]
#            the same profile for this machine's architecture, unzipped, into DIR/<name>/
#            bootstrap: what clinicflow-bench spawns to measure cold start and memory.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=2500000
functions="$(ls functions) hello-floor"
packages=()
native_dir=""
if [ "${1:-}" = "--native" ]; then
  native_dir="${2:?--native needs a directory}"
  shift 2
  [ "$#" -gt 0 ] && functions="$*"
fi
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
# unify their features (SQLite, failure points) into every function.
# The failure points (the platform's `failpoints` feature, which `clinicflow` forwards) are
# for tests only: refuse to build if anything brings them into these packages.
if ! features="$(cargo tree --locked -e normal,build,features -i clinicflow-platform "${packages[@]}")"; then
  echo "error: could not resolve the features of clinicflow-platform in ${packages[*]}" >&2
  exit 1
fi
if grep -q 'clinicflow-platform feature "failpoints"' <<<"$features"; then
  echo "error: the platform's failpoints feature reaches a Lambda function; what enables it:" >&2
  grep -A3 'clinicflow-platform feature "failpoints"' <<<"$features" >&2
  exit 1
fi
if [ -n "$native_dir" ]; then
  cargo lambda build --release --target "$(rustc -vV | sed -n 's/^host: //p')" --lambda-dir "$native_dir" "${packages[@]}"
  exit 0
fi
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"

printf '| function | zipped (arm64) |\n|---|---:|\n'
over=0
for f in $functions; do
  zip="target/lambda/$f/bootstrap.zip"
  size=$(stat -c %s "$zip")
  printf '| `%s` | %s KiB |\n' "$f" "$((size / 1024))"
  if [ "$size" -gt "$budget" ]; then
    echo "error: $zip is $size bytes, over the 2.5 MB (2,500,000 bytes) budget" >&2
    over=1
  fi
done
exit "$over"
