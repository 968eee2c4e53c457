#!/usr/bin/env bash
# Builds every Lambda bootstrap (functions/<bootstrap>/: one per slice, one for the
# platform's own functions, each serving several Lambda functions picked by their Handler
# setting), and the benchmarks' hello-world floor (bench/floor), for arm64 (cargo-lambda
# with its zig), zips each, and checks that no zip exceeds the 2.5 MB budget. Prints a
# Markdown table: per bootstrap, its zipped size and the functions it serves (from
# infra/topology.json).
# Usage: ./scripts/lambda-build.sh        (needs cargo-lambda: pip install cargo-lambda)
#        ./scripts/lambda-build.sh --native DIR [PACKAGE...]
#            the same profile for this machine's architecture, unzipped, into DIR/<name>/
#            bootstrap: what clinicflow-bench spawns to measure cold start and memory.
#            PACKAGE is a bootstrap (checkup, platform, hello-floor).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=2500000
bootstraps="$(ls functions) hello-floor"
packages=()
native_dir=""
if [ "${1:-}" = "--native" ]; then
  native_dir="${2:?--native needs a directory}"
  shift 2
  [ "$#" -gt 0 ] && bootstraps="$*"
fi
for b in $bootstraps; do packages+=(-p "$b"); done

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
# Nor the document generators (`docs`): a function serves the committed docs/openapi.json.
for feature in failpoints docs; do
  if grep -q "clinicflow-platform feature \"$feature\"" <<<"$features"; then
    echo "error: the platform's $feature feature reaches a Lambda bootstrap; what enables it:" >&2
    grep -A3 "clinicflow-platform feature \"$feature\"" <<<"$features" >&2
    exit 1
  fi
done
if [ -n "$native_dir" ]; then
  cargo lambda build --release --target "$(rustc -vV | sed -n 's/^host: //p')" --lambda-dir "$native_dir" "${packages[@]}"
  exit 0
fi
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"

served() {
  python3 - "$1" <<'PY'
import json, sys
topology = json.load(open("infra/topology.json"))
names = [f["name"] for f in topology["functions"] if f["bootstrap"] == sys.argv[1]]
print(", ".join(f"`{n}`" for n in names) if names else "(the benchmarks' floor)")
PY
}
printf '| bootstrap | zipped (arm64) | serves |\n|---|---:|---|\n'
over=0
for b in $bootstraps; do
  zip="target/lambda/$b/bootstrap.zip"
  size=$(stat -c %s "$zip")
  printf '| `%s` | %s KiB | %s |\n' "$b" "$((size / 1024))" "$(served "$b")"
  if [ "$size" -gt "$budget" ]; then
    echo "error: $zip is $size bytes, over the 2.5 MB (2,500,000 bytes) budget" >&2
    over=1
  fi
done
exit "$over"
