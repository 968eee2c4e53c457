#!/usr/bin/env bash
# Builds and deploys every SAM stack of one stage: the platform's first (the flows' stacks
# import its exports), then each flow's, in the order of infra/topology.json.
#
# Usage: infra/scripts/sam-deploy.sh <stage> [Key=Value ...]
#   <stage>       names the stacks clinicflow-<stage>-<stack> and their exports
#   Key=Value     more parameter overrides for the platform's stack (JwtIssuer=…,
#                 JwtAudience=…, SmsSenderId=…, …); the flows' stacks take only the shared
#                 three (Stage, DeploymentType, LogRetentionDays)
# Environment:
#   DEPLOYMENT_TYPE     default AllAtOnce for any stage but prod (Canary10Percent5Minutes)
#   LOG_RETENTION_DAYS  default: the templates' (30)
#   SAM_DEPLOY_FLAGS    extra `sam deploy` flags (CI: --no-confirm-changeset)
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=${1:?usage: infra/scripts/sam-deploy.sh <stage> [Key=Value ...]}
shift
if [ "$stage" = prod ]; then
  deployment_type=${DEPLOYMENT_TYPE:-Canary10Percent5Minutes}
else
  deployment_type=${DEPLOYMENT_TYPE:-AllAtOnce}
fi
shared=("Stage=$stage" "DeploymentType=$deployment_type")
if [ -n "${LOG_RETENTION_DAYS:-}" ]; then
  shared+=("LogRetentionDays=$LOG_RETENTION_DAYS")
fi

# The platform's stack, then the flows' (the topology lists the flows first).
mapfile -t stacks < <(python3 - <<'PY'
import json
stacks = json.load(open("infra/topology.json"))["stacks"]
platform = "platform"
print(platform)
print("\n".join(s for s in stacks if s != platform))
PY
)

for stack in "${stacks[@]}"; do
  overrides=("${shared[@]}")
  if [ "$stack" = platform ]; then
    overrides+=("$@")
  fi
  echo "==> clinicflow-$stage-$stack"
  (
    cd "infra/sam/$stack"
    sam build --beta-features
    # shellcheck disable=SC2086 # SAM_DEPLOY_FLAGS is a list of flags
    sam deploy --stack-name "clinicflow-$stage-$stack" --s3-prefix "clinicflow-$stage-$stack" \
      --resolve-s3 --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
      --parameter-overrides "${overrides[@]}" ${SAM_DEPLOY_FLAGS:-}
  )
done
