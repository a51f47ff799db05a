#!/usr/bin/env bash
# Register this machine as an ephemeral self-hosted GitHub Actions runner for GPU training.
#
# Usage: GITHUB_URL=https://github.com/ORG/REPO RUNNER_TOKEN=... scripts/runners/register-runner.sh [RUNNER_DIR]
#
# - Labels come from mlops.yaml (runners.gpu), the one place train.yml reads them from.
# - --ephemeral: the runner takes one job and unregisters, so no job inherits another's state;
#   run it under systemd (github-runner.service) to get a fresh registration per job.
# - RUNNER_TOKEN is a short-lived *registration* token (repo/org Settings > Actions > Runners, or
#   `gh api -X POST repos/ORG/REPO/actions/runners/registration-token`), never a personal token.
# - Refuses to continue without a working NVIDIA driver unless ALLOW_NO_GPU=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "${here}/../.." && pwd)"
: "${GITHUB_URL:?set GITHUB_URL to https://github.com/ORG/REPO (or the org URL)}"
: "${RUNNER_TOKEN:?set RUNNER_TOKEN to a registration token (expires after one hour)}"
runner_dir="${1:-${HOME:-/home/runner}/actions-runner}"

labels="$(python3 - "${repo_root}/mlops.yaml" <<'PY'
import sys, yaml
labels = yaml.safe_load(open(sys.argv[1]))["runners"]["gpu"]
print(",".join(l for l in labels if l != "self-hosted"))
PY
)"

if ! "${here}/check-nvidia.sh"; then
  if [ "${ALLOW_NO_GPU:-0}" != "1" ]; then
    echo "register-runner: no usable GPU; set ALLOW_NO_GPU=1 to register a CPU-only runner anyway" >&2
    exit 1
  fi
fi

if [ ! -x "${runner_dir}/config.sh" ]; then
  echo "register-runner: ${runner_dir}/config.sh not found: unpack the actions/runner release there first" >&2
  exit 1
fi

cd "${runner_dir}"
./config.sh --unattended --ephemeral --replace \
  --url "${GITHUB_URL}" --token "${RUNNER_TOKEN}" \
  --name "$(hostname)-gpu" --labels "${labels}" --work _work
echo "register-runner: registered $(hostname)-gpu with labels self-hosted,${labels}"
