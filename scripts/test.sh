#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check and test.
# Usage: ./scripts/test.sh   (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

step "tools"
# clippy and rustfmt ship with the toolchain image; add them where they do not.
for component in clippy rustfmt; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# moto (the AWS emulator), cargo-lambda (with zig), cfn-lint and the SAM CLI, pinned, in
# the project's own venv. Node (for the CDK app) comes with the machine; npm ci below.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
export PATH="$PWD/.venv/bin:$PATH"
if ! command -v npm >/dev/null 2>&1; then
  echo "error: Node.js 20+ with npm is needed to synthesize the CDK app (infra/cdk)" >&2
  exit 1
fi

step "moto server"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
python scripts/moto_server.py -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
export CLINICFLOW_MOTO_ENDPOINT="http://127.0.0.1:$port"
python3 - "$CLINICFLOW_MOTO_ENDPOINT" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=2)
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("moto did not start; see target/moto.log")
PY
echo "moto listening on $CLINICFLOW_MOTO_ENDPOINT"

step "format"
cargo fmt --all -- --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Lambda functions: cargo lambda build --release --arm64, zipped sizes"
./scripts/lambda-build.sh

step "infrastructure: SAM stacks generated, cdk synth, cfn-lint, sam validate --lint, resources per stack"
# The SAM templates are generated from infra/topology.json (never edited by hand): a stale
# one fails here (and in tests/tests/infra_templates.rs).
python infra/scripts/sam-gen.py --check
# The CDK app (typescript@5, aws-cdk@2, pinned in its package-lock.json) synthesizes every
# stack from infra/topology.json and the zips built above; nothing here calls AWS.
export CDK_DISABLE_CLI_TELEMETRY=1
(cd infra/cdk && npm ci --no-audit --no-fund --loglevel=error && npx --no-install cdk synth --quiet)
cfn-lint infra/sam/*/template.yaml infra/cdk/cdk.out/*.template.json
# sam validate needs a region; --lint runs cfn-lint's rules with SAM's own settings.
for stack in infra/sam/*/; do
  (cd "$stack" && AWS_DEFAULT_REGION=us-east-1 sam validate --lint)
done
python infra/scripts/stack-report.py

step "doctests"
cargo test --workspace --doc --locked --quiet

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

step "reliability harness: quick run (clinicflow-reliability --quick, about three minutes; fails on any violation)"
# The runners are built with the tests' own features (--all-targets, as nextest built
# them), so nothing is compiled twice; `cargo run -p <runner>` would resolve features for
# that package alone and rebuild the SDK crates.
cargo build --workspace --all-targets --locked --quiet
# Failpoints, redelivery, concurrency, schemathesis and hostile input, the authorization
# matrix and the privacy scan; writes target/reliability/summary.json. The quick run: every
# kind of case of every slice, fewer of each (the full run, about eight minutes for four
# slices, is `cargo run --release -p clinicflow-reliability`; ADR 0008).
target/debug/clinicflow-reliability --quick

step "benchmarks: smoke run (clinicflow-bench --quick; figures, no assertions on them)"
# The runner and the bootstraps it spawns come from the test build above, the zips from the
# Lambda build step: the smoke run keeps the runner working, its figures are not the ones
# reported. The full run is `cargo run --release -p clinicflow-bench` (BENCHMARKS.md).
target/debug/clinicflow-bench --quick
